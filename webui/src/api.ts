// The OpenAI-compatible API of `volga serve`: model info and streamed chat
// completions (Server-Sent Events), with the API key as a Bearer token.
import type { Message, Sampling, ToolCall } from './store';

export class UnauthorizedError extends Error {}

export interface ModelInfo { id: string; contextSize?: number }

function headers(apiKey: string | null): Record<string, string> {
  const h: Record<string, string> = { 'Content-Type': 'application/json' };
  if (apiKey) h['Authorization'] = 'Bearer ' + apiKey;
  return h;
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const j = JSON.parse(text);
    if (j && j.error && j.error.message) return j.error.message;
  } catch { /* not JSON */ }
  return `HTTP ${res.status} ${text.slice(0, 200)}`;
}

export async function fetchModel(apiKey: string | null): Promise<ModelInfo> {
  const res = await fetch('v1/models', { headers: headers(apiKey) });
  if (res.status === 401) throw new UnauthorizedError(await errorText(res));
  if (!res.ok) throw new Error(await errorText(res));
  const j = await res.json();
  const m = j.data && j.data[0];
  return { id: m ? m.id : 'default', contextSize: m && typeof m.max_model_len === 'number' ? m.max_model_len : undefined };
}

export interface StreamCallbacks {
  onContent(text: string): void;
  onReasoning(text: string): void;
  onToolCall(index: number, part: { id?: string; name?: string; arguments?: string }): void;
  onFinish(reason: string): void;
  onUsage(usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number }): void;
}

export function requestMessages(system: string, history: Message[]): unknown[] {
  const out: unknown[] = [];
  if (system.trim()) out.push({ role: 'system', content: system });
  for (const m of history) {
    if (m.role === 'assistant' && m.error && !m.content) continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

// Streams one reply. Resolves when the stream ends; rejects with
// UnauthorizedError on 401, with an AbortError when `signal` aborts it.
export async function streamChat(model: string, messages: unknown[], sampling: Sampling, apiKey: string | null,
                                 signal: AbortSignal, cb: StreamCallbacks): Promise<void> {
  const body: Record<string, unknown> = { model, messages, stream: true, stream_options: { include_usage: true } };
  for (const k of ['temperature', 'top_p', 'max_tokens'] as const)
    if (typeof sampling[k] === 'number' && !Number.isNaN(sampling[k])) body[k] = sampling[k];
  const res = await fetch('v1/chat/completions', { method: 'POST', headers: headers(apiKey), body: JSON.stringify(body), signal });
  if (res.status === 401) throw new UnauthorizedError(await errorText(res));
  if (!res.ok || !res.body) throw new Error(await errorText(res));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (handleEvent(event, cb)) return;
    }
  }
}

// One SSE event; returns true at [DONE].
function handleEvent(event: string, cb: StreamCallbacks): boolean {
  const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
  if (!data) return false;
  if (data === '[DONE]') return true;
  const j = JSON.parse(data);
  if (j.error) throw new Error(j.error.message || String(j.error));
  if (j.usage) cb.onUsage(j.usage);
  for (const choice of j.choices || []) {
    const d = choice.delta || {};
    if (typeof d.reasoning_content === 'string' && d.reasoning_content) cb.onReasoning(d.reasoning_content);
    if (typeof d.content === 'string' && d.content) cb.onContent(d.content);
    for (const tc of d.tool_calls || [])
      cb.onToolCall(tc.index ?? 0, { id: tc.id, name: tc.function?.name, arguments: tc.function?.arguments });
    if (choice.finish_reason) cb.onFinish(choice.finish_reason);
  }
  return false;
}

export function mergeToolCall(calls: ToolCall[], index: number, part: { id?: string; name?: string; arguments?: string }): ToolCall[] {
  const next = calls.slice();
  const cur = next[index] || { name: '', arguments: '' };
  next[index] = {
    id: part.id ?? cur.id,
    name: part.name ?? cur.name,
    arguments: cur.arguments + (part.arguments ?? ''),
  };
  return next;
}
