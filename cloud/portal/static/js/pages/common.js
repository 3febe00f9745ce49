// Pieces several pages share: name lookups for machines, groups and clusters, owner labels, the
// sharing card, key ids, refreshing a page every few seconds.
import {base64ToBytes, bytesToHex, listAll} from '../api.js';
import {h, replace} from '../dom.js';
import {roleLabel} from '../format.js';
import {button, card, errorSlot, field, select, table, textInput, toast, whileBusy} from '../ui.js';

// Every machine, group and cluster the user may see, by id. `signal`: see api.js call().
export async function loadDirectory({machines = true, groups = true, clusters = true, signal} = {}) {
  const [m, g, c] = await Promise.all([
    machines ? listAll('MachineService', 'ListMachines', 'machines', {}, {signal}) : [],
    groups ? listAll('GroupService', 'ListGroups', 'groups', {}, {signal}) : [],
    clusters ? listAll('ClusterService', 'ListClusters', 'clusters', {}, {signal}) : [],
  ]);
  return {
    machines: new Map(m.map((x) => [x.machineId, x])),
    groups: new Map(g.map((x) => [x.groupId, x])),
    clusters: new Map(c.map((x) => [x.clusterId, x])),
  };
}

// A link to a machine, group or cluster by id, named when the directory knows it.
export function targetLink(directory, kind, id) {
  if (!id) return h('span', {class: 'muted', text: '—'});
  const collection = {machine: 'machines', group: 'groups', cluster: 'clusters'}[kind];
  const item = directory && directory[collection] ? directory[collection].get(id) : null;
  const name = item ? item.name : id;
  return h('a', {href: `#/${collection}/${encodeURIComponent(id)}`, title: id, text: name});
}

export function targetKindLabel(kind) {
  return {machine: 'Machine', group: 'Machine group', cluster: 'Gateway cluster'}[kind] || 'Unknown';
}

export function ownerLabel(ownerUserId, user) {
  if (ownerUserId && user && ownerUserId === user.userId) return h('span', {text: 'you'});
  return h('code', {class: 'id', title: ownerUserId, text: ownerUserId ? `${ownerUserId.slice(0, 8)}…` : '—'});
}

// The caller's role on a shareable object: 'owner' (its creator or an owner share), 'user', or ''.
export function myRole(item, user, ownerField = 'ownerUserId') {
  if (item[ownerField] === user.userId) return 'owner';
  const share = (item.sharedWith || []).find((s) => s.userId === user.userId);
  return share ? roleLabel(share.role) : '';
}

export function sharedWithCell(shares) {
  if (!shares || !shares.length) return h('span', {class: 'muted', text: 'not shared'});
  return h('span', {class: 'chips'}, shares.map((s) =>
    h('span', {class: 'chip', title: `${s.userName}: ${roleLabel(s.role)}`},
      s.userName, h('span', {class: 'chip-role', text: roleLabel(s.role)}))));
}

// Lower-case hex of the first 16 bytes of SHA-256 of a raw public key: the recipient key id that
// envelopes sealed to this key carry (docs/CRYPTO.md).
export async function keyIdHex(publicKeyBase64) {
  if (!publicKeyBase64) return '';
  const digest = await crypto.subtle.digest('SHA-256', base64ToBytes(publicKeyBase64));
  return bytesToHex(new Uint8Array(digest).slice(0, 16));
}

// The sharing card of a machine or group: who it is shared with, and (for owners) a form to share
// or change a role and buttons to stop sharing. share(userName, role) and unshare(userName) return
// the updated object; onChange(updated) redraws the page.
export function sharesCard({shares, canManage, share, unshare, onChange, what}) {
  const slot = errorSlot();
  const rows = shares || [];
  const list = table({
    caption: 'Shared with',
    columns: [
      {label: 'User', cell: (s) => s.userName},
      {label: 'Role', cell: (s) => h('span', {class: 'badge badge-normal', text: roleLabel(s.role)})},
      {label: '', class: 'cell-actions', cell: (s) => canManage
        ? button('Stop sharing', {kind: 'ghost', onClick: async (event) => {
          const buttonEl = event.currentTarget;  // null once the handler has awaited
          slot.clear();
          buttonEl.disabled = true;
          try {
            const updated = await unshare(s.userName);
            toast(`${what} is no longer shared with ${s.userName}.`);
            onChange(updated);
          } catch (e) {
            slot.show(e);
            buttonEl.disabled = false;
          }
        }})
        : null},
    ],
    rows,
    empty: h('p', {class: 'muted', text: `This ${what.toLowerCase()} is not shared with anyone.`}),
  });
  if (!canManage) return card('Sharing', list, slot.el);
  const userField = field({label: 'User name', control: textInput({name: 'user', required: true})});
  const roleField = field({label: 'Role', control: select([
    {value: 'SHARE_ROLE_USER', label: 'User — may create connections and run flows on it'},
    {value: 'SHARE_ROLE_OWNER', label: 'Owner — may also share and delete it'},
  ], {name: 'role'})});
  const submit = button('Share', {kind: 'secondary', type: 'submit', iconName: 'share'});
  const form = h('form', {class: 'inline-form', novalidate: true},
    userField.el, roleField.el, h('div', {class: 'inline-form-actions'}, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    slot.clear();
    const userName = userField.control.value.trim();
    userField.setError(userName ? '' : 'Enter the name of the user to share with.');
    if (!userName) return;
    await whileBusy(form, submit, 'Sharing…', async () => {
      try {
        const updated = await share(userName, roleField.control.value);
        toast(`${what} shared with ${userName}.`);
        onChange(updated);
      } catch (e) {
        slot.show(e, {title: 'Could not share'});
      }
    });
  });
  return card('Sharing', list, h('h3', {class: 'subhead', text: 'Share with a user'}), form, slot.el);
}

// Replaces `view`'s content with a freshly built page (keeps the scroll position).
export function redraw(view, ...children) {
  const y = window.scrollY;
  replace(view, ...children);
  window.scrollTo(0, y);
}

// Calls `refresh` every `intervalMs` until the page goes away, one call at a time: `now()` (the
// Refresh button) refreshes at once unless a refresh is already under way, so clicking it never
// starts a second loop. Register it before the page's first await: if the user has already moved
// on, ctx.onCleanup runs at once and no timer starts. A failed refresh shows in `slot` (with
// `title`) and the next one is tried as usual; a 401 stops it (the sign-in page is showing).
export function autoRefresh(ctx, refresh, {intervalMs, slot, title}) {
  let timer = null;
  let stopped = false;
  let inFlight = false;
  async function tick() {
    if (stopped || inFlight) return;
    clearTimeout(timer);
    inFlight = true;
    try {
      await refresh();
      if (!stopped) slot.clear();
    } catch (e) {
      if (stopped || e.status === 401) return;
      slot.show(e, {title});
    } finally {
      inFlight = false;
    }
    if (!stopped) timer = setTimeout(tick, intervalMs);
  }
  ctx.onCleanup(() => {
    stopped = true;
    clearTimeout(timer);
  });
  return {
    // Starts the timer (after the page's first load).
    start() {
      if (!stopped && ctx.isCurrent()) timer = setTimeout(tick, intervalMs);
    },
    now: tick,
  };
}
