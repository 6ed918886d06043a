// The user's edits that the host has not seen yet, kept across the host's own changes of the values. The host
// sends the form's values whole when it changes them (a model's defaults, a backend's GPU count); those were
// computed before it got what the user typed since (the webview tells it 120 ms after the last keystroke, and the
// message takes a while on a busy machine), so taking them wholesale would undo those keystrokes.
import type { FormValues, SettingKey } from '../protocol';

/**
 * The values to show when the host sent `incoming` without having seen every edit: `incoming`, except for what
 * the user changed in `local` since `base` (the host's values the webview last took), which stays as typed.
 */
export function keepEdits(base: FormValues, local: FormValues, incoming: FormValues): FormValues {
  const merged = structuredClone(incoming);
  const changed = <T>(a: T, b: T): boolean => JSON.stringify(a) !== JSON.stringify(b);
  if (local.name !== base.name) merged.name = local.name;
  if (local.backend !== base.backend) merged.backend = local.backend;
  if (local.model !== base.model) merged.model = local.model;
  if (local.gpus !== base.gpus) merged.gpus = local.gpus;
  if (changed(local.dataset, base.dataset)) merged.dataset = structuredClone(local.dataset);
  for (const key of Object.keys(local.settings) as SettingKey[]) {
    if (local.settings[key] !== base.settings[key]) merged.settings[key] = local.settings[key];
  }
  for (const key of local.touched) if (!merged.touched.includes(key)) merged.touched.push(key);
  // "More settings" opened a moment ago may not have reached the host yet: its values never close it.
  merged.moreOpen ||= local.moreOpen;
  return merged;
}
