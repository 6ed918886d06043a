// The page every webview app of the extension is served in (the New Training Run form, the run dashboard, the
// chat): one script and its stylesheets from the extension's own files, a strict Content-Security-Policy keyed
// by a fresh nonce, the display language on <html lang>, and a loading line until the app has drawn itself.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

/** Escapes text for an HTML attribute or text node. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The panel options of an app: scripts on, find widget on, and only dist/webview and media/ as local resources. */
export function webviewPanelOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    retainContextWhenHidden: false,
    enableFindWidget: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

/** What one app's page is made of. */
export interface WebviewPage {
  webview: vscode.Webview;
  extensionUri: vscode.Uri;
  /** The app's bundle, relative to the extension's root (`dist/webview/chat.js`). */
  script: string;
  /** Its stylesheets, relative to the root, in order. */
  styles: readonly string[];
  title: string;
  /** `<html lang>`: VS Code's display language. */
  lang: string;
}

/**
 * The page's HTML. Nothing in it or in the apps needs 'unsafe-inline': the toolkit's components style themselves
 * through constructable stylesheets (which style-src does not govern) and its one <style> element takes the
 * nonce from the csp-nonce meta tag; the chat's Markdown is sanitised and carries no style attributes; images are
 * the extension's own, data: URLs (chart exports) and blob: URLs.
 */
export function webviewPageHtml(page: WebviewPage): string {
  const { webview, extensionUri } = page;
  const nonce = randomBytes(16).toString('base64');
  const uri = (path: string): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...path.split('/'))).toString();
  const csp = [
    `default-src 'none'`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `img-src ${webview.cspSource} data: blob:`,
  ].join('; ');
  const styles = page.styles.map((path) => `<link rel="stylesheet" href="${uri(path)}" nonce="${nonce}">`).join('\n');
  return `<!DOCTYPE html>
<html lang="${escapeHtml(page.lang)}">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta property="csp-nonce" content="${nonce}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${styles}
<title>${escapeHtml(page.title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">${escapeHtml(vscode.l10n.t('Loading…'))}</p></main>
<script nonce="${nonce}" src="${uri(page.script)}"></script>
</body>
</html>`;
}
