// Conversations, kept in this browser's localStorage (nothing is stored on
// the server). One JSON document under one key; written after each change
// and at most every half second while a reply streams.
export interface ToolCall { id?: string; name: string; arguments: string }

export interface ReplyStats {
  completionTokens: number;
  promptTokens?: number;
  tokensPerSecond?: number;   // decoding speed: tokens after the first / time since the first
  firstTokenMs?: number;      // request sent -> first token received
  contextUsed?: number;       // prompt + completion tokens
  contextSize?: number;       // the server's context (GET /v1/models, max_model_len)
  finish?: string;            // stop | length | tool_calls | stopped
}

export interface Message {
  role: 'user' | 'assistant';
  content: string;
  reasoning?: string;
  toolCalls?: ToolCall[];
  stats?: ReplyStats;
  error?: string;
}

export interface Sampling { temperature?: number; top_p?: number; max_tokens?: number }

export interface Conversation {
  id: string;
  title: string;
  updated: number;
  system: string;
  sampling: Sampling;
  messages: Message[];
}

const KEY = 'volga.conversations';

export function loadConversations(): Conversation[] {
  try {
    const raw = localStorage.getItem(KEY);
    const list = raw ? JSON.parse(raw) : [];
    return Array.isArray(list) ? list.filter((c) => c && typeof c.id === 'string' && Array.isArray(c.messages)) : [];
  } catch {
    return [];
  }
}

export function saveConversations(list: Conversation[]): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(list));
  } catch {
    // Storage full or disabled: the conversation still works in this tab.
  }
}

export function newConversation(): Conversation {
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  return { id, title: '', updated: Date.now(), system: '', sampling: {}, messages: [] };
}

export function titleOf(text: string): string {
  const line = text.trim().split('\n')[0];
  return line.length > 48 ? line.slice(0, 47) + '…' : line;
}

export const settings = {
  get(name: string): string | null {
    try { return localStorage.getItem('volga.' + name); } catch { return null; }
  },
  set(name: string, value: string | null): void {
    try {
      if (value === null) localStorage.removeItem('volga.' + name);
      else localStorage.setItem('volga.' + name, value);
    } catch { /* ignored */ }
  },
};
