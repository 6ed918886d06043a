// Installs what the VS Code host needs, idempotently: Debian's libkrb5-dev and ripgrep (to install code-server),
// chromium and a CJK font (for the UI tests) and python3 (for the torch engine's tests) with apt-get as root,
// and code-server (a complete VS Code build from the npm registry) into .vscode-host/, which is gitignored and
// never a dependency of the project (its install needs the workarounds below).
//
//   node scripts/host/install.mjs               install what is missing, say what was already there
//   node scripts/host/install.mjs --no-browser  the same without chromium (what `npm start` needs)
//   node scripts/host/install.mjs --check       install nothing; exit 1 and say what is missing
//
// Already installed, it does no network request and takes well under a second. libkrb5-dev and ripgrep are
// needed only to install code-server, so they are not asked for once it is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** code-server 4.100.3 ships VS Code 1.100.3, the oldest version `engines.vscode` allows, and runs on Node 20. */
const CODE_SERVER_VERSION = '4.100.3';
const HOST_DIR = join(ROOT, '.vscode-host');
const CODE_SERVER_ENTRY = join(HOST_DIR, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
/** Written last, so that an install that was interrupted half-way is not mistaken for a finished one. */
const MARKER = join(HOST_DIR, 'installed.json');
/**
 * code-server's @vscode/ripgrep (1.15.11) downloads ripgrep v13.0.0-10 in its postinstall unless this archive is
 * already in its cache under the temporary folder; we pack Debian's `rg` there instead.
 */
const RIPGREP_CACHE = 'vscode-ripgrep-cache-1.15.11';
const RIPGREP_ARCHIVE = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';
/** Debian packages that code-server's install needs: kerberos headers for its native module, rg for the archive above. */
const CODE_SERVER_BUILD_PACKAGES = [
  { name: 'libkrb5-dev', why: 'headers to build code-server\'s kerberos module' },
  { name: 'ripgrep', why: 'the rg binary VS Code searches with (its own download cannot reach the network)' },
];
/** The browser the UI tests drive with playwright-core (never a browser download of Playwright's own). */
const BROWSER_PACKAGES = [
  { name: 'chromium', why: 'the browser for the UI tests (/usr/bin/chromium)' },
  // Without a CJK font the sample's Chinese lines are boxes in the screenshots (1.8 MB, the smallest that covers it).
  { name: 'fonts-droid-fallback', why: 'CJK glyphs, so that screenshots show the sample\'s Chinese text' },
  // Not the browser, but needed by the same `npm test`: the torch engine's pure-Python parts run without torch.
  { name: 'python3', why: 'the torch engine\'s data path and protocol are tested with Python (no torch needed)' },
];

class InstallError extends Error {}

function log(message) {
  console.log(`[host install] ${message}`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.error) throw new InstallError(`${command} could not start: ${result.error.message}`);
  return result.status ?? 1;
}

function debianInstalled(name) {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.includes('install ok installed');
}

function installDebianPackages(packages, check) {
  // The workarounds are for this project's machines (Debian, no downloads); elsewhere npm fetches what it needs.
  if (process.platform !== 'linux') {
    log(`not Linux: skipping ${packages.map((p) => p.name).join(', ')} (the UI tests need Chromium at /usr/bin/chromium)`);
    return;
  }
  const missing = packages.filter(({ name }) => !debianInstalled(name));
  for (const { name } of packages.filter((p) => !missing.includes(p))) log(`${name}: already installed`);
  if (missing.length === 0) return;
  const names = missing.map((p) => p.name);
  for (const { name, why } of missing) log(`${name}: missing (${why})`);
  if (check) throw new InstallError(`missing Debian packages: ${names.join(' ')}`);
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new InstallError(`apt-get is not available; install these packages by hand: ${names.join(' ')}`);
  }
  if (process.getuid?.() !== 0) {
    throw new InstallError(`installing Debian packages needs root; run: sudo apt-get install -y ${names.join(' ')}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log('apt-get update');
  if (run('apt-get', ['update', '-q'], { env }) !== 0) throw new InstallError('apt-get update failed (see above)');
  log(`apt-get install ${names.join(' ')}`);
  if (run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...names], { env }) !== 0) {
    throw new InstallError(`apt-get install ${names.join(' ')} failed (see above)`);
  }
  const still = names.filter((name) => !debianInstalled(name));
  if (still.length > 0) throw new InstallError(`still missing after apt-get install: ${still.join(' ')}`);
}

function codeServerInstalled() {
  if (!existsSync(MARKER) || !existsSync(CODE_SERVER_ENTRY)) return false;
  try {
    return JSON.parse(readFileSync(MARKER, 'utf8')).version === CODE_SERVER_VERSION;
  } catch {
    return false;
  }
}

/** Packs Debian's rg as the archive @vscode/ripgrep would download, in the cache under `tmp`. */
function packRipgrep(tmp) {
  const rg = spawnSync('sh', ['-c', 'command -v rg'], { encoding: 'utf8' }).stdout.trim();
  if (rg === '') throw new InstallError('rg (Debian package ripgrep) is not on PATH');
  const cache = join(tmp, RIPGREP_CACHE);
  mkdirSync(cache, { recursive: true });
  const archive = join(cache, RIPGREP_ARCHIVE);
  if (existsSync(archive) && statSync(archive).size > 0) return;
  // The prebuilt archive holds the binary at its root, named rg.
  if (run('tar', ['-czf', archive, '-C', dirname(rg), 'rg']) !== 0) throw new InstallError(`could not pack ${rg}`);
}

function installCodeServer(check) {
  if (codeServerInstalled()) {
    log(`code-server ${CODE_SERVER_VERSION}: already installed in .vscode-host/`);
    return;
  }
  if (check) throw new InstallError(`code-server ${CODE_SERVER_VERSION} is not installed in .vscode-host/`);
  installDebianPackages(CODE_SERVER_BUILD_PACKAGES, check);
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 20) log(`warning: code-server ${CODE_SERVER_VERSION} is built for Node 20; this is Node ${process.versions.node}`);
  log(`code-server ${CODE_SERVER_VERSION}: installing into .vscode-host/ (1–2 minutes, ~300 MB; npm is quiet meanwhile)`);
  rmSync(MARKER, { force: true });
  mkdirSync(HOST_DIR, { recursive: true });
  // A package.json of its own, so that npm never walks up to the project's (code-server is not its dependency).
  writeFileSync(
    join(HOST_DIR, 'package.json'),
    `${JSON.stringify({ name: 'finetune-studio-vscode-host', private: true, description: 'code-server for npm start and the UI tests; made by scripts/host/install.mjs' }, null, 2)}\n`,
  );
  const tmp = join(HOST_DIR, 'tmp');
  if (process.platform === 'linux' && process.arch === 'x64') packRipgrep(tmp);
  const env = {
    ...process.env,
    // The cache @vscode/ripgrep looks in is under os.tmpdir().
    TMPDIR: tmp,
    // Both measured as needed here (issue 3): unsafe-perm for install scripts run as root (npm 11 warns that it
    // does not know it, harmlessly), and yes=true over this machine's `yes = false` for code-server's postinstall.
    npm_config_unsafe_perm: 'true',
    npm_config_yes: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  const status = run('npm', ['install', '--no-save', '--omit=dev', `code-server@${CODE_SERVER_VERSION}`], {
    cwd: HOST_DIR,
    env,
  });
  if (status !== 0 || !existsSync(CODE_SERVER_ENTRY)) {
    throw new InstallError(`npm install code-server@${CODE_SERVER_VERSION} failed in .vscode-host/ (see above)`);
  }
  // code-server must start; its --version is cheap. Its config goes to our folder, not the home folder.
  const version = spawnSync(process.execPath, [CODE_SERVER_ENTRY, '--version'], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CONFIG_HOME: tmp, XDG_DATA_HOME: tmp },
  });
  if (version.status !== 0) {
    throw new InstallError(`code-server was installed but does not start:\n${version.stdout}${version.stderr}`);
  }
  writeFileSync(MARKER, `${JSON.stringify({ version: CODE_SERVER_VERSION, node: process.versions.node }, null, 2)}\n`);
  log(`code-server ${CODE_SERVER_VERSION}: installed (${version.stdout.trim().split('\n').pop()})`);
}

function main() {
  const check = process.argv.includes('--check');
  const browser = !process.argv.includes('--no-browser');
  const started = Date.now();
  try {
    installCodeServer(check);
    if (browser) installDebianPackages(BROWSER_PACKAGES, check);
  } catch (error) {
    if (!(error instanceof InstallError)) throw error;
    console.error(`[host install] failed: ${error.message}`);
    process.exit(1);
  }
  log(`ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

main();
