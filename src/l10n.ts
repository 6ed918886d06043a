/**
 * The translator for the pure modules of `src/` (status-bar text, statistics HTML, formatting), which unit tests
 * load under plain Node where `vscode` does not exist. Activation installs `vscode.l10n`; until then, and in
 * the tests, messages are the English source strings with their `{0}`… placeholders filled in, exactly as
 * `vscode.l10n.t` does when no bundle applies. Modules that import `vscode` call `vscode.l10n.t` directly.
 */

/** What a placeholder may be filled with (what `vscode.l10n.t` accepts). */
export type L10nArg = string | number | boolean;

/** The part of `vscode.l10n` the pure modules use. */
export interface Translator {
  t(message: string, ...args: L10nArg[]): string;
}

/** Fills `{0}`, `{1}`… from `args`; a placeholder without an argument stays as it is (VS Code does the same). */
export function fillPlaceholders(message: string, args: readonly L10nArg[]): string {
  return message.replace(/\{(\d+)\}/g, (match, index: string) => {
    const value = args[Number(index)];
    return value === undefined ? match : String(value);
  });
}

const english: Translator = { t: (message, ...args) => fillPlaceholders(message, args) };

let current: Translator = english;
let currentLanguage = 'en';

/** Translates a message; the English source string is the key, as in `l10n/bundle.l10n.*.json`. */
export const l10n: Translator = {
  t: (message, ...args) => current.t(message, ...args),
};

/**
 * Installs the translator (`vscode.l10n`) and the display language (`vscode.env.language`), once at activation;
 * with no arguments, restores English.
 */
export function useTranslator(translator: Translator = english, language = 'en'): void {
  current = translator;
  currentLanguage = language;
}

/** The display language, for `<html lang>` in webviews (it picks Chinese rather than Japanese glyphs, for one). */
export function displayLanguage(): string {
  return currentLanguage;
}
