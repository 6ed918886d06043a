import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

// The command table imports `vscode`, which plain Node cannot load: its ids are read from the source instead.
const root = join(__dirname, '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  main: string;
  activationEvents: string[];
  contributes: {
    commands: { command: string; title: string; category: string }[];
    menus: Record<string, { command: string; when?: string }[]>;
  };
};
const contributed = manifest.contributes.commands.map((c) => c.command).sort();

describe('extension manifest', () => {
  it('contributes exactly the commands the extension registers', () => {
    // commands.ts's table spreads in the tables that live beside their services; read every such table.
    const registered: string[] = [];
    for (const file of readdirSync(join(root, 'src')).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(root, 'src', file), 'utf8');
      for (const start of source.matchAll(/Record<string, CommandFactory>> = \{\n/g)) {
        const table = source.slice(start.index, source.indexOf('\n};', start.index));
        registered.push(...[...table.matchAll(/^ {2}'(finetune\.[A-Za-z]+)':/gm)].map((m) => m[1]));
      }
    }
    assert.deepEqual(registered.sort(), contributed);
  });

  it('names commands finetune.verbNoun under the Finetune category', () => {
    for (const command of manifest.contributes.commands) {
      assert.match(command.command, /^finetune\.[a-z]+[A-Z][A-Za-z]*$/);
      assert.equal(command.category, 'Finetune');
    }
  });

  it('puts only contributed commands in menus', () => {
    for (const [menu, items] of Object.entries(manifest.contributes.menus)) {
      for (const item of items) assert.ok(contributed.includes(item.command), `${menu}: ${item.command}`);
    }
  });

  it('activates on datasets, and loads the bundle esbuild writes', () => {
    assert.ok(manifest.activationEvents.includes('onLanguage:jsonl'));
    assert.equal(manifest.main, './dist/extension.js');
  });

  it('ships the statistics stylesheet', () => {
    assert.ok(existsSync(join(root, 'media', 'statistics.css')));
  });
});
