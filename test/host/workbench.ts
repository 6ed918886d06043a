// What the Chromium UI tests do in the workbench as a user would: run a command from the palette, switch the
// colour theme, find the runs view and a row of its tree. Each waits on the workbench's own elements.
import type { Locator, Page } from 'playwright-core';

/** Runs a command from the palette (F1), by its title as the palette lists it. */
export async function palette(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor();
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().click();
}

/** Switches the colour theme through the theme picker, and waits for the workbench to carry its class. */
export async function colorTheme(page: Page, theme: string, workbenchClass: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor();
  await input.fill('>workbench.action.selectTheme');
  await page.keyboard.press('Enter');
  await input.fill(theme);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: theme }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.locator(`.monaco-workbench.${workbenchClass}`).waitFor();
}

/** The side bar, where the runs view is. */
export function runsView(page: Page): Locator {
  return page.locator('#workbench\\.parts\\.sidebar');
}

/** A row of the runs tree whose label is exactly `label`. */
export function treeRow(page: Page, label: string): Locator {
  const exact = new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return runsView(page).locator('.monaco-list-row').filter({ has: page.locator('.label-name', { hasText: exact }) });
}
