// Machines: every desktop the user owns or that is shared with it, with live status.
import {call} from '../api.js';
import {h, replace} from '../dom.js';
import {formatTime, idCell, machineStatusPill, timeCell} from '../format.js';
import {button, card, confirmDialog, details, emptyState, errorSlot, linkButton, pageHeader, table, toast} from '../ui.js';
import {autoRefresh, keyIdHex, loadDirectory, myRole, ownerLabel, redraw, sharedWithCell, sharesCard, targetLink} from './common.js';

const REFRESH_MS = 3000;

function statusCounts(machines) {
  const counts = {online: 0, busy: 0, offline: 0};
  for (const m of machines) {
    if (m.status === 'MACHINE_STATUS_ONLINE') counts.online++;
    else if (m.status === 'MACHINE_STATUS_BUSY') counts.busy++;
    else if (m.status === 'MACHINE_STATUS_OFFLINE') counts.offline++;
  }
  return counts;
}

function stat(label, value, tone) {
  return h('div', {class: ['stat', tone ? `stat-${tone}` : null]},
    h('div', {class: 'stat-value', text: String(value)}), h('div', {class: 'stat-label', text: label}));
}

// A machine behind a gateway is reached through the cluster's members: say how many are up.
function gatewayNote(cluster) {
  if (!cluster) return null;
  const members = cluster.members || [];
  const up = members.filter((x) => ['MACHINE_STATUS_ONLINE', 'MACHINE_STATUS_BUSY'].includes(x.status)).length;
  return h('div', {class: 'cell-sub', text: `via ${cluster.name} (${up}/${members.length} members up)`});
}

function machinesTable(directory, user) {
  const machines = [...directory.machines.values()].sort((a, b) => a.name.localeCompare(b.name));
  return table({
    caption: 'Machines',
    columns: [
      {label: 'Name', cell: (m) => h('div', {class: 'cell-main'},
        h('a', {href: `#/machines/${encodeURIComponent(m.machineId)}`, class: 'strong', text: m.name}),
        h('div', {class: 'cell-sub'}, idCell(m.machineId, 12)))},
      {label: 'Status', cell: (m) => h('div', {},
        machineStatusPill(m.status),
        m.currentRunId ? h('div', {class: 'cell-sub'}, 'run ',
          h('a', {href: `#/runs/${encodeURIComponent(m.currentRunId)}`, text: m.currentRunId.slice(0, 12)})) : null,
        m.clusterId ? gatewayNote(directory.clusters.get(m.clusterId)) : null)},
      {label: 'Group', cell: (m) => targetLink(directory, 'group', m.groupId)},
      {label: 'Gateway cluster', cell: (m) => targetLink(directory, 'cluster', m.clusterId)},
      {label: 'Shared with', cell: (m) => sharedWithCell(m.sharedWith)},
      {label: 'Owner', cell: (m) => ownerLabel(m.ownerUserId, user)},
      {label: 'Registered', cell: (m) => timeCell(m.registeredAtUnixMs)},
    ],
    rows: machines,
    rowProps: (m) => ({dataset: {machineName: m.name, machineId: m.machineId}}),
    empty: emptyState({
      iconName: 'machine',
      title: 'No machines yet',
      body: ['Register a desktop with ', h('code', {text: 'agent register --cloud … --name NAME'}),
             '; it appears here as soon as it is registered, and online once its agent runs.'],
    }),
  });
}

export async function renderList(view, ctx) {
  const body = h('div', {class: 'machines-body'});
  const updated = h('span', {class: 'live-indicator', 'aria-live': 'off'});
  const refreshError = errorSlot();

  async function refresh() {
    const directory = await loadDirectory({signal: ctx.signal});
    const machines = [...directory.machines.values()];
    const counts = statusCounts(machines);
    replace(body,
      h('div', {class: 'stats'},
        stat('machines', machines.length),
        stat('online', counts.online, 'ok'),
        stat('busy', counts.busy, 'warn'),
        stat('offline', counts.offline, 'off')),
      machinesTable(directory, ctx.user));
    updated.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    refreshError.clear();
  }

  const live = autoRefresh(ctx, refresh, {intervalMs: REFRESH_MS, slot: refreshError, title: 'Could not refresh the machine list'});
  await refresh();  // the first load's failure is the page's failure
  if (!ctx.isCurrent()) return;
  replace(view,
    pageHeader({
      title: 'Machines',
      subtitle: 'Desktops registered with an agent. Status comes from the relay\u2019s presence and the dispatcher.',
      actions: [updated, button('Refresh', {iconName: 'refresh', onClick: () => live.now()}),
                linkButton('New connection', '#/connections/new', {kind: 'primary', iconName: 'plus'})],
    }),
    refreshError.el,
    body);
  live.start();
}

export async function renderDetail(view, ctx) {
  const id = ctx.params.id;
  const [machine, directory, connections] = await Promise.all([
    call('MachineService', 'GetMachine', {machineId: id}),
    loadDirectory({machines: false}),
    call('ConnectionService', 'ListConnections', {target: {machineId: id}}),
  ]);
  const keyId = await keyIdHex(machine.x25519Pub);
  draw(view, ctx, machine, directory, connections.connections || [], keyId);
}

function draw(view, ctx, machine, directory, connections, keyId) {
  ctx.setTitle(machine.name);
  const role = myRole(machine, ctx.user);
  const slot = errorSlot();
  const deleteButton = button('Delete machine', {kind: 'danger', iconName: 'trash', onClick: async () => {
    const ok = await confirmDialog({
      title: `Delete ${machine.name}?`,
      body: h('p', {}, 'The machine and its shares are removed, and every connection to it is deleted ',
        'with its sealed credentials. The agent stops receiving runs; register it again to use it.'),
    });
    if (!ok) return;
    try {
      await call('MachineService', 'DeleteMachine', {machineId: machine.machineId});
      toast(`Machine ${machine.name} deleted.`);
      ctx.navigate('#/machines');
    } catch (e) {
      slot.show(e, {title: 'Could not delete the machine'});
    }
  }});
  redraw(view,
    pageHeader({
      title: machine.name,
      subtitle: h('span', {}, machineStatusPill(machine.status)),
      back: {href: '#/machines', label: 'Machines'},
      actions: [linkButton('New connection', `#/connections/new?machine=${encodeURIComponent(machine.machineId)}`,
                           {kind: 'primary', iconName: 'plus'}),
                role === 'owner' ? deleteButton : null],
    }),
    slot.el,
    h('div', {class: 'grid-2'},
      card('Details', details([
        ['Machine id', h('code', {text: machine.machineId})],
        ['Relay entity', h('code', {text: machine.entity})],
        ['Status', machineStatusPill(machine.status)],
        machine.currentRunId ? ['Running', h('a', {href: `#/runs/${encodeURIComponent(machine.currentRunId)}`, text: machine.currentRunId})] : null,
        ['Group', targetLink(directory, 'group', machine.groupId)],
        ['Gateway cluster', targetLink(directory, 'cluster', machine.clusterId)],
        ['Owner', ownerLabel(machine.ownerUserId, ctx.user)],
        ['Your role', h('span', {text: role || '—'})],
        ['Registered', h('span', {text: formatTime(machine.registeredAtUnixMs)})],
        ['Credential key id', h('code', {class: 'wrap', title: 'first 16 bytes of SHA-256 of the machine\u2019s X25519 public key', text: keyId || '—'})],
      ])),
      card('Connections to this machine',
        table({
          caption: 'Connections',
          columns: [
            {label: 'Name', cell: (c) => c.name},
            {label: 'Account', cell: (c) => h('code', {text: c.username})},
            {label: 'Created', cell: (c) => timeCell(c.createdAtUnixMs)},
          ],
          rows: connections,
          empty: h('p', {class: 'muted', text: 'No connection of yours runs on this machine yet.'}),
        }))),
    sharesCard({
      what: 'Machine',
      shares: machine.sharedWith,
      canManage: role === 'owner',
      share: (userName, shareRole) => call('MachineService', 'ShareMachine', {machineId: machine.machineId, userName, role: shareRole}),
      unshare: (userName) => call('MachineService', 'UnshareMachine', {machineId: machine.machineId, userName}),
      onChange: (updated) => draw(view, ctx, updated, directory, connections, keyId),
    }));
}
