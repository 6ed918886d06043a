import { formatMessage, localeOf, msg, type Locale, type MessageArg, type MessageId } from '../common/i18n/messages';
import type { LineFinding } from '../common/dataset/codes';

/**
 * The language of everything the server says to the user (diagnostics, hover, quick-fix titles, notices),
 * chosen once at `initialize`: the client's `locale` (VS Code sends its display language), else LC_ALL /
 * LC_MESSAGES / LANG (other editors rarely send one), else English. Until then, and in tests that drive the
 * services directly, English.
 */
let locale: Locale = 'en';

/** Chooses the language from `InitializeParams.locale` and the environment. */
export function chooseLocale(clientLocale: string | undefined, env: Record<string, string | undefined>): Locale {
  locale = localeOf(clientLocale ?? env.LC_ALL ?? env.LC_MESSAGES ?? env.LANG);
  return locale;
}

/** The message `id` in the chosen language. */
export function t(id: MessageId, ...args: MessageArg[]): string {
  return formatMessage(msg(id, ...args), locale);
}

/** A finding's message in the chosen language (its English one when it carries no message id). */
export function findingMessage(f: LineFinding): string {
  return f.text === undefined || locale === 'en' ? f.message : formatMessage(f.text, locale);
}
