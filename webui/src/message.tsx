// One message: Markdown (sanitised), collapsible reasoning, tool calls,
// per-reply figures, and the copy / edit / regenerate actions.
import { useMemo, useState } from 'preact/hooks';
import type { STRINGS } from './i18n';
import type { Message, ReplyStats } from './store';
import { mathReady, renderMarkdown } from './markdown';

type T = (typeof STRINGS)['en'];

export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain-HTTP pages on another host have no clipboard API.
    const area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

function CopyButton({ t, text }: { t: T; text: () => string }) {
  const [done, setDone] = useState(false);
  return (
    <button class="action" data-testid="copy" onClick={() => copyText(text()).then(() => { setDone(true); setTimeout(() => setDone(false), 1200); })}>
      {done ? t.copied : t.copy}
    </button>
  );
}

function Markdown({ text }: { text: string }) {
  const ready = mathReady();
  const html = useMemo(() => renderMarkdown(text), [text, ready]);
  // Code-block copy buttons are part of the rendered HTML: one delegated handler.
  const onClick = (e: MouseEvent) => {
    const button = (e.target as HTMLElement).closest('button[data-copy-code]');
    const code = button?.closest('.code-block')?.querySelector('pre');
    if (code) copyText(code.textContent || '');
  };
  return <div class="markdown" onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />;
}

function formatStats(t: T, s: ReplyStats): string {
  const parts: string[] = [`${s.completionTokens} ${t.tokens}`];
  if (s.tokensPerSecond) parts.push(`${s.tokensPerSecond.toFixed(1)} ${t.tokPerSec}`);
  if (s.firstTokenMs !== undefined) parts.push(`${t.firstToken} ${(s.firstTokenMs / 1000).toFixed(2)} s`);
  if (s.contextUsed !== undefined)
    parts.push(`${t.context} ${s.contextUsed}${s.contextSize ? ` / ${s.contextSize} (${Math.round((100 * s.contextUsed) / s.contextSize)}%)` : ''}`);
  if (s.finish === 'stopped') parts.push(t.stopped);
  else if (s.finish && s.finish !== 'stop') parts.push(s.finish);
  return parts.join(' · ');
}

interface Props {
  t: T;
  message: Message;
  index: number;
  streaming: boolean;
  canRegenerate: boolean;
  canEdit: boolean;
  onRegenerate(): void;
  onEdit(text: string): void;
}

export function MessageView({ t, message: m, index, streaming, canRegenerate, canEdit, onRegenerate, onEdit }: Props) {
  const [editing, setEditing] = useState<string | null>(null);
  const isUser = m.role === 'user';
  return (
    <article class={`message ${m.role}${streaming ? ' streaming' : ''}`} data-testid={`message-${m.role}`} data-index={index}>
      <div class="role">{isUser ? t.you : t.assistant}</div>
      {m.reasoning && (
        <details class="reasoning" data-testid="reasoning" open={streaming && !m.content}>
          <summary>{t.reasoning}</summary>
          <Markdown text={m.reasoning} />
        </details>
      )}
      {editing !== null ? (
        <div class="edit">
          <textarea data-testid="edit-input" value={editing} rows={4} onInput={(e) => setEditing((e.target as HTMLTextAreaElement).value)} />
          <div class="actions">
            <button class="action" data-testid="edit-send" onClick={() => { const v = editing.trim(); setEditing(null); if (v) onEdit(v); }}>{t.saveSend}</button>
            <button class="action" onClick={() => setEditing(null)}>{t.cancel}</button>
          </div>
        </div>
      ) : isUser ? (
        <div class="plain" data-testid="content">{m.content}</div>
      ) : (
        <div data-testid="content"><Markdown text={m.content} /></div>
      )}
      {(m.toolCalls || []).map((c) => (
        <details class="tool-call" data-testid="tool-call" open>
          <summary>{t.toolCall}: <code>{c.name}</code></summary>
          <pre>{prettyJson(c.arguments)}</pre>
        </details>
      ))}
      {m.error && <div class="error" data-testid="error">{t.error}: {m.error}</div>}
      {!isUser && m.stats && !streaming && <div class="stats" data-testid="stats">{formatStats(t, m.stats)}</div>}
      {!streaming && editing === null && (
        <div class="actions">
          <CopyButton t={t} text={() => m.content} />
          {canEdit && <button class="action" data-testid="edit" onClick={() => setEditing(m.content)}>{t.edit}</button>}
          {canRegenerate && <button class="action" data-testid="regenerate" onClick={onRegenerate}>{t.regenerate}</button>}
        </div>
      )}
    </article>
  );
}

function prettyJson(s: string): string {
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch {
    return s;
  }
}
