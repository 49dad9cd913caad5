// The chat application: conversation list, messages, composer, settings and
// the API-key prompt. State lives here; conversations persist in localStorage.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { detectLang, LANG_NAMES, STRINGS, type Lang } from './i18n';
import { fetchModel, mergeToolCall, requestMessages, streamChat, UnauthorizedError, type ModelInfo } from './api';
import { loadConversations, newConversation, saveConversations, settings, titleOf, type Conversation, type Message } from './store';
import { setMathReadyListener } from './markdown';
import { MessageView } from './message';
import { ApiKeyDialog, SettingsPanel } from './panels';

type Theme = 'dark' | 'light';

function initialTheme(): Theme {
  const t = settings.get('theme');
  if (t === 'dark' || t === 'light') return t;
  return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

interface Streaming { convId: string; abort: AbortController }

export function App() {
  const [lang, setLang] = useState<Lang>(() => detectLang(settings.get('lang'), navigator.languages || [navigator.language]));
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [convs, setConvs] = useState<Conversation[]>(() => loadConversations());
  const [currentId, setCurrentId] = useState<string | null>(() => settings.get('current'));
  const [apiKey, setApiKey] = useState<string | null>(() => settings.get('apiKey'));
  const [keyPrompt, setKeyPrompt] = useState<null | { wrong: boolean }>(null);
  const [model, setModel] = useState<ModelInfo | null>(null);
  const [streaming, setStreaming] = useState<Streaming | null>(null);
  const [showSettings, setShowSettings] = useState(false);
  const [draft, setDraft] = useState('');
  const [, setMathTick] = useState(0);
  const [repliesDone, setRepliesDone] = useState(0);  // replies ended in this tab (data-replies-done, for tests)
  const pendingRetry = useRef<(() => void) | null>(null);
  const messagesBox = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const lastSave = useRef(0);
  const t = STRINGS[lang];

  useEffect(() => setMathReadyListener(() => setMathTick((n) => n + 1)), []);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    settings.set('theme', theme);
  }, [theme]);
  useEffect(() => {
    document.documentElement.lang = lang;
    document.documentElement.style.setProperty('--copy-label', JSON.stringify(STRINGS[lang].copy));
  }, [lang]);

  // Persist: at once when idle, at most twice a second while streaming. A
  // layout effect, so storage is current in the same task as the DOM.
  useLayoutEffect(() => {
    const now = Date.now();
    if (!streaming || now - lastSave.current > 500) {
      saveConversations(convs);
      lastSave.current = now;
    }
  }, [convs, streaming]);
  useEffect(() => settings.set('current', currentId), [currentId]);

  const loadModel = (key: string | null) => {
    fetchModel(key).then(setModel, (e) => {
      if (e instanceof UnauthorizedError) setKeyPrompt({ wrong: !!key });
    });
  };
  useEffect(() => loadModel(apiKey), []);

  const current = useMemo(() => convs.find((c) => c.id === currentId) || null, [convs, currentId]);

  // Follow a streaming reply unless the user scrolled up to read.
  useEffect(() => {
    const box = messagesBox.current;
    if (box && stickToBottom.current) box.scrollTop = box.scrollHeight;
  }, [current]);
  useEffect(() => { stickToBottom.current = true; }, [currentId]);
  const onScroll = () => {
    const box = messagesBox.current;
    if (box) stickToBottom.current = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  };

  const updateConv = (id: string, fn: (c: Conversation) => Conversation) =>
    setConvs((list) => list.map((c) => (c.id === id ? { ...fn(c), updated: Date.now() } : c)));

  const updateLastMessage = (id: string, fn: (m: Message) => Message) =>
    updateConv(id, (c) => ({ ...c, messages: [...c.messages.slice(0, -1), fn(c.messages[c.messages.length - 1])] }));

  // Streams the assistant's reply to `history` into conversation `conv`.
  const generate = (conv: Conversation, history: Message[], key: string | null = apiKey) => {
    const abort = new AbortController();
    const id = conv.id;
    updateConv(id, (c) => ({ ...c, messages: [...history, { role: 'assistant', content: '', stats: { completionTokens: 0 } }] }));
    setStreaming({ convId: id, abort });
    const sent = performance.now();
    let first = 0, pieces = 0;
    const tick = () => {
      pieces++;
      if (!first) first = performance.now();
    };
    const contextSize = model?.contextSize;
    const done = (extra: Partial<Message>, finish?: string) => {
      const end = performance.now();
      updateLastMessage(id, (m) => {
        const n = m.stats?.completionTokens || pieces;
        const stats = { ...m.stats, completionTokens: n, contextSize,
                        firstTokenMs: first ? first - sent : undefined,
                        tokensPerSecond: first && end > first && n > 1 ? (n - 1) / ((end - first) / 1000) : undefined,
                        finish: finish ?? m.stats?.finish };
        return { ...m, ...extra, stats };
      });
      setStreaming(null);
      setRepliesDone((n) => n + 1);
    };
    streamChat(model?.id || 'default', requestMessages(conv.system, history), conv.sampling, key, abort.signal, {
      onContent: (text) => { tick(); updateLastMessage(id, (m) => ({ ...m, content: m.content + text })); },
      onReasoning: (text) => { tick(); updateLastMessage(id, (m) => ({ ...m, reasoning: (m.reasoning || '') + text })); },
      onToolCall: (index, part) => { tick(); updateLastMessage(id, (m) => ({ ...m, toolCalls: mergeToolCall(m.toolCalls || [], index, part) })); },
      onFinish: (reason) => updateLastMessage(id, (m) => ({ ...m, stats: { ...m.stats!, finish: reason } })),
      onUsage: (u) => updateLastMessage(id, (m) => ({ ...m, stats: { ...m.stats!, completionTokens: u.completion_tokens,
                                                                     promptTokens: u.prompt_tokens, contextUsed: u.total_tokens } })),
    }).then(() => done({}), (e) => {
      if (abort.signal.aborted) return done({}, 'stopped');
      if (e instanceof UnauthorizedError) {
        updateConv(id, (c) => ({ ...c, messages: history }));
        setStreaming(null);
        pendingRetry.current = () => generate({ ...conv, messages: history }, history, settings.get('apiKey'));
        setKeyPrompt({ wrong: !!key });
        return;
      }
      done({ error: String(e && e.message ? e.message : e) });
    });
  };

  const send = () => {
    const text = draft.trim();
    if (!text || streaming) return;
    let conv = current;
    if (!conv) {
      conv = newConversation();
      const fresh = conv;
      setConvs((list) => [fresh, ...list]);
      setCurrentId(conv.id);
    }
    const history: Message[] = [...conv.messages, { role: 'user', content: text }];
    if (!conv.title) {
      const title = titleOf(text);
      conv = { ...conv, title };
      const id = conv.id;
      setConvs((list) => list.map((c) => (c.id === id ? { ...c, title } : c)));
    }
    setDraft('');
    generate(conv, history);
  };

  const regenerate = () => {
    if (!current || streaming) return;
    const msgs = current.messages;
    const cut = msgs[msgs.length - 1]?.role === 'assistant' ? msgs.length - 1 : msgs.length;
    generate(current, msgs.slice(0, cut));
  };

  const editAndResend = (index: number, text: string) => {
    if (!current || streaming) return;
    const history = [...current.messages.slice(0, index), { role: 'user' as const, content: text }];
    generate(current, history);
  };

  const stop = () => streaming?.abort.abort();

  const newChat = () => {
    if (streaming) return;
    setCurrentId(null);
    setDraft('');
  };

  const deleteChat = (id: string) => {
    if (streaming?.convId === id) streaming.abort.abort();
    setConvs((list) => list.filter((c) => c.id !== id));
    if (currentId === id) setCurrentId(null);
  };

  const saveKey = (key: string) => {
    settings.set('apiKey', key);
    setApiKey(key);
    setKeyPrompt(null);
    loadModel(key);
    const retry = pendingRetry.current;
    pendingRetry.current = null;
    if (retry) retry();
  };

  const chooseLang = (l: Lang) => {
    settings.set('lang', l);
    setLang(l);
  };

  const ensureConv = (): Conversation => {
    if (current) return current;
    const c = newConversation();
    setConvs((list) => [c, ...list]);
    setCurrentId(c.id);
    return c;
  };

  const sorted = [...convs].sort((a, b) => b.updated - a.updated);
  const busy = !!streaming;
  const msgs = current?.messages || [];

  return (
    <div class="layout">
      <aside class="sidebar" aria-label={t.conversations}>
        <button class="new-chat" data-testid="new-chat" onClick={newChat} disabled={busy}>+ {t.newChat}</button>
        <ul class="conv-list" data-testid="conv-list">
          {sorted.map((c) => (
            <li key={c.id} class={c.id === currentId ? 'active' : ''}>
              <button class="conv-title" onClick={() => !busy && setCurrentId(c.id)} title={c.title}>{c.title || t.untitled}</button>
              <button class="icon" title={t.deleteChat} aria-label={t.deleteChat} onClick={() => deleteChat(c.id)}>×</button>
            </li>
          ))}
        </ul>
        <div class="sidebar-foot">
          <label>
            {t.language}{' '}
            <select data-testid="lang" value={lang} onChange={(e) => chooseLang((e.target as HTMLSelectElement).value as Lang)}>
              {(Object.keys(LANG_NAMES) as Lang[]).map((l) => <option value={l}>{LANG_NAMES[l]}</option>)}
            </select>
          </label>
          <button data-testid="theme" onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}>
            {t.theme}: {theme === 'dark' ? t.dark : t.light}
          </button>
          {apiKey && <button onClick={() => { settings.set('apiKey', null); setApiKey(null); }}>{t.forgetKey}</button>}
        </div>
      </aside>
      <main class="chat">
        <header class="chat-head">
          <span class="model-name" data-testid="model">{model ? model.id : ''}</span>
          <button data-testid="settings-toggle" onClick={() => setShowSettings(!showSettings)}>⚙ {t.settings}</button>
        </header>
        {showSettings && (
          <SettingsPanel t={t} conv={current} onChange={(fn) => { const c = ensureConv(); updateConv(c.id, fn); }}
                         onClose={() => setShowSettings(false)} />
        )}
        <div class="messages" data-testid="messages" data-replies-done={repliesDone} ref={messagesBox} onScroll={onScroll}>
          {msgs.length === 0 && <p class="empty">{t.emptyHint}</p>}
          {msgs.map((m, i) => (
            <MessageView key={i} t={t} message={m} index={i}
                         streaming={busy && streaming!.convId === current!.id && i === msgs.length - 1}
                         canRegenerate={!busy && i === msgs.length - 1 && m.role === 'assistant'}
                         canEdit={!busy && m.role === 'user'}
                         onRegenerate={regenerate} onEdit={(text) => editAndResend(i, text)} />
          ))}
        </div>
        <form class="composer" onSubmit={(e) => { e.preventDefault(); send(); }}>
          <textarea data-testid="input" value={draft} placeholder={t.placeholder} rows={3}
                    onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
                    onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } }} />
          {busy ? <button type="button" class="stop" data-testid="stop" onClick={stop}>■ {t.stop}</button>
                : <button type="submit" class="send" data-testid="send" disabled={!draft.trim()}>{t.send}</button>}
        </form>
      </main>
      {keyPrompt && <ApiKeyDialog t={t} wrong={keyPrompt.wrong} onSave={saveKey} />}
    </div>
  );
}
