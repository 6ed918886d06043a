// The page script of the benchmark's scenario 3b: the stand-in for VS Code's webview API first, then the real
// dashboard app (see chartBenchAppStub.ts).
import './chartBenchAppStub';
import './main';
