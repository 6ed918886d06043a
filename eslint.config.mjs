// Lint with type information, so that promises nobody awaits are errors (STYLE.md: `void` marks the
// fire-and-forget ones on purpose).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', 'test-artifacts/**', '.bench-data/**', '.vscode-host/**', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: [],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // node:test's describe/it return promises that the runner itself tracks.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
    },
  },
  // Folders are process boundaries (ARCHITECTURE.md): what may not be imported where.
  {
    files: ['common/**/*.ts', 'webview/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'fs', 'path', 'os', 'child_process', 'worker_threads', 'zlib', 'crypto', 'stream', 'events', 'http', 'https', 'net', 'url', 'util'], message: 'common/ and webview/ run anywhere: no Node built-ins.' },
          { group: ['vscode', 'vscode-languageclient', 'vscode-languageclient/*', 'vscode-languageserver', 'vscode-languageserver/*'], message: 'common/ and webview/ may not depend on VS Code or one side of the LSP connection.' },
          { group: ['../src/*', '../server/*', '../backend/*', '../cli/*', '../../src/*', '../../server/*', '../../backend/*', '../../cli/*'], message: 'common/ and webview/ import only common/.' },
        ],
      }],
    },
  },
  {
    files: ['server/**/*.ts', 'backend/**/*.ts', 'cli/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['vscode', 'vscode-languageclient', 'vscode-languageclient/*'], message: 'Only the extension host (src/) may import vscode.' }] }],
    },
  },
);
