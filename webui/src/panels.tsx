// The per-conversation settings panel and the API-key dialog.
import { useState } from 'preact/hooks';
import type { STRINGS } from './i18n';
import type { Conversation, Sampling } from './store';

type T = (typeof STRINGS)['en'];

function numberOrUndefined(v: string): number | undefined {
  if (v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

interface SettingsProps {
  t: T;
  conv: Conversation | null;
  onChange(fn: (c: Conversation) => Conversation): void;
  onClose(): void;
}

export function SettingsPanel({ t, conv, onChange, onClose }: SettingsProps) {
  const s: Sampling = conv?.sampling || {};
  const setSampling = (key: keyof Sampling, v: string) =>
    onChange((c) => ({ ...c, sampling: { ...c.sampling, [key]: numberOrUndefined(v) } }));
  const field = (key: keyof Sampling, label: string, step: string, min: string, max?: string) => (
    <label>
      {label}
      <input type="number" data-testid={`set-${key}`} step={step} min={min} max={max} placeholder={t.serverDefault}
             value={s[key] ?? ''} onChange={(e) => setSampling(key, (e.target as HTMLInputElement).value)} />
    </label>
  );
  return (
    <section class="settings" data-testid="settings">
      <label class="wide">
        {t.systemPrompt}
        <textarea data-testid="system" rows={3} placeholder={t.systemPlaceholder} value={conv?.system || ''}
                  onChange={(e) => { const v = (e.target as HTMLTextAreaElement).value; onChange((c) => ({ ...c, system: v })); }} />
      </label>
      <div class="row">
        {field('temperature', t.temperature, '0.05', '0', '2')}
        {field('top_p', t.topP, '0.05', '0', '1')}
        {field('max_tokens', t.maxTokens, '1', '1')}
      </div>
      <button onClick={onClose}>{t.close}</button>
    </section>
  );
}

export function ApiKeyDialog({ t, wrong, onSave }: { t: T; wrong: boolean; onSave(key: string): void }) {
  const [key, setKey] = useState('');
  return (
    <div class="overlay">
      <form class="dialog" data-testid="api-key-dialog" onSubmit={(e) => { e.preventDefault(); if (key.trim()) onSave(key.trim()); }}>
        <h2>{t.apiKey}</h2>
        <p>{t.apiKeyPrompt}</p>
        {wrong && <p class="error">{t.apiKeyWrong}</p>}
        <input type="password" data-testid="api-key-input" autocomplete="off" value={key} autoFocus
               onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        <button type="submit" data-testid="api-key-save">{t.save}</button>
      </form>
    </div>
  );
}
