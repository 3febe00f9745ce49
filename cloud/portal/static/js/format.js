// Formatting shared by the pages: times, durations, status and state pills, ids.
import {h} from './dom.js';

// proto3 JSON prints int64 as strings; 0 means "not set" for every time field in cloud.proto.
export function toNumber(value) {
  const n = Number(value || 0);
  return Number.isFinite(n) ? n : 0;
}

const absoluteFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  second: '2-digit',
});

export function formatTime(ms) {
  const n = toNumber(ms);
  return n ? absoluteFormat.format(new Date(n)) : '—';
}

export function formatRelative(ms, now = Date.now()) {
  const n = toNumber(ms);
  if (!n) return '—';
  const seconds = Math.round((now - n) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatTime(n);
}

// A <time> showing "3 min ago" with the exact time as its tooltip.
export function timeCell(ms) {
  const n = toNumber(ms);
  if (!n) return h('span', {class: 'muted', text: '—'});
  return h('time', {datetime: new Date(n).toISOString(), title: formatTime(n),
                    text: formatRelative(n)});
}

export function formatDuration(ms) {
  const n = Math.max(0, Math.round(toNumber(ms)));
  if (n < 1000) return `${n} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
  const minutes = Math.floor(n / 60000);
  const seconds = Math.round((n % 60000) / 1000);
  if (minutes < 60) return `${minutes} min ${seconds} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// "MACHINE_STATUS_ONLINE" -> "online"; "RUN_STATE_TIMED_OUT" -> "timed out".
export function enumLabel(value, prefix) {
  const text = String(value || '');
  const bare = text.startsWith(prefix) ? text.slice(prefix.length) : text;
  return bare.toLowerCase().replace(/_/g, ' ');
}

const MACHINE_STATUS = {
  MACHINE_STATUS_ONLINE: ['online', 'ok'],
  MACHINE_STATUS_BUSY: ['busy', 'warn'],
  MACHINE_STATUS_OFFLINE: ['offline', 'off'],
};

export function machineStatusPill(status) {
  const [label, tone] = MACHINE_STATUS[status] || ['unknown', 'unknown'];
  return h('span', {class: ['pill', `pill-${tone}`], dataset: {status: label}},
           h('span', {class: 'pill-dot'}), label);
}

const RUN_STATE_TONE = {
  RUN_STATE_QUEUED: 'queued',
  RUN_STATE_DISPATCHING: 'active',
  RUN_STATE_RUNNING: 'active',
  RUN_STATE_SUCCEEDED: 'ok',
  RUN_STATE_FAILED: 'bad',
  RUN_STATE_CANCELLED: 'off',
  RUN_STATE_TIMED_OUT: 'warn',
};

export const TERMINAL_RUN_STATES = new Set([
  'RUN_STATE_SUCCEEDED', 'RUN_STATE_FAILED', 'RUN_STATE_CANCELLED', 'RUN_STATE_TIMED_OUT',
]);

export function runStateLabel(state) {
  return enumLabel(state, 'RUN_STATE_');
}

export function runStatePill(state) {
  const tone = RUN_STATE_TONE[state] || 'unknown';
  const label = runStateLabel(state) || 'unknown';
  return h('span', {class: ['pill', `pill-${tone}`], dataset: {state: label}},
           h('span', {class: 'pill-dot'}), label);
}

export function priorityBadge(priority) {
  const high = priority === 'RUN_PRIORITY_HIGH';
  return h('span', {class: ['badge', high ? 'badge-high' : 'badge-normal'],
                    text: high ? 'high' : 'normal'});
}

export function roleLabel(role) {
  return enumLabel(role, 'SHARE_ROLE_');
}

export function modeLabel(mode) {
  return enumLabel(mode, 'RUN_MODE_');
}

// A monospace id, shortened, with the whole id as its tooltip.
export function idCell(id, length = 8) {
  const text = String(id || '');
  if (!text) return h('span', {class: 'muted', text: '—'});
  return h('code', {class: 'id', title: text,
                    text: text.length > length + 1 ? `${text.slice(0, length)}…` : text});
}

// Which kind of target a ConnectionTarget (or Run.target) names, and its id.
export function targetOf(target) {
  const t = target || {};
  if (t.machineId) return {kind: 'machine', id: t.machineId};
  if (t.groupId) return {kind: 'group', id: t.groupId};
  if (t.clusterId) return {kind: 'cluster', id: t.clusterId};
  return {kind: '', id: ''};
}

export function pluralize(n, one, many) {
  return `${n} ${n === 1 ? one : many || `${one}s`}`;
}
