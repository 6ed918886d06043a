// What every webview app of the extension starts with: VS Code's webview API, the typed channel to its panel
// in the extension host (webview/protocol.ts), and the two DOM helpers the apps build their views with.
import { IpcEndpoint } from './protocol';

/** VS Code's API inside a webview (`acquireVsCodeApi`, callable once per page). */
export interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

/** Acquires VS Code's API and opens the channel to the panel: what the host posts is fed to the endpoint. */
export function connectToHost(): { vscode: VsCodeApi; ipc: IpcEndpoint } {
  const vscode = acquireVsCodeApi();
  const ipc = new IpcEndpoint((message) => vscode.postMessage(message));
  window.addEventListener('message', (event: MessageEvent<unknown>) => ipc.receive(event.data));
  return { vscode, ipc };
}

/** An element with attributes and children (text is added as text, never parsed as HTML). */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attributes?: Record<string, string>, ...children: (Node | string)[]): HTMLElementTagNameMap[K];
export function el(tag: string, attributes?: Record<string, string>, ...children: (Node | string)[]): HTMLElement;
export function el(tag: string, attributes: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** The element with that id; a missing one is a bug in the page, said by its id. */
export function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`#${id} is missing`);
  return node as T;
}
