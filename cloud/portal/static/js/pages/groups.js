// Machine groups: machines sharing one X25519 key pair (the group password never reaches the cloud).
import {call, listAll} from '../api.js';
import {h} from '../dom.js';
import {formatTime, idCell, machineStatusPill, pluralize, timeCell} from '../format.js';
import {button, card, confirmDialog, details, emptyState, errorSlot, linkButton, pageHeader, table, toast} from '../ui.js';
import {keyIdHex, myRole, ownerLabel, redraw, sharedWithCell, sharesCard} from './common.js';

export async function renderList(view, ctx) {
  const [groups, machines] = await Promise.all([
    listAll('GroupService', 'ListGroups', 'groups'),
    listAll('MachineService', 'ListMachines', 'machines'),
  ]);
  const machineById = new Map(machines.map((m) => [m.machineId, m]));
  groups.sort((a, b) => a.name.localeCompare(b.name));
  redraw(view,
    pageHeader({
      title: 'Machine groups',
      subtitle: 'Machines that share one key pair: a connection to a group runs on whichever member is free first.',
    }),
    table({
      caption: 'Machine groups',
      columns: [
        {label: 'Name', cell: (g) => h('div', {class: 'cell-main'},
          h('a', {href: `#/groups/${encodeURIComponent(g.groupId)}`, class: 'strong', text: g.name}),
          h('div', {class: 'cell-sub'}, idCell(g.groupId, 12)))},
        {label: 'Machines', cell: (g) => {
          const ids = g.machineIds || [];
          if (!ids.length) return h('span', {class: 'muted', text: 'none yet'});
          const online = ids.filter((id) => ['MACHINE_STATUS_ONLINE', 'MACHINE_STATUS_BUSY'].includes(machineById.get(id)?.status)).length;
          return h('div', {},
            h('div', {text: ids.map((id) => machineById.get(id)?.name || id).join(', ')}),
            h('div', {class: 'cell-sub', text: `${online} of ${ids.length} online`}));
        }},
        {label: 'Shared with', cell: (g) => sharedWithCell(g.sharedWith)},
        {label: 'Owner', cell: (g) => ownerLabel(g.ownerUserId, ctx.user)},
        {label: 'Created', cell: (g) => timeCell(g.createdAtUnixMs)},
      ],
      rows: groups,
      rowProps: (g) => ({dataset: {groupName: g.name}}),
      empty: emptyState({
        iconName: 'group',
        title: 'No machine groups',
        body: ['Create one with ', h('code', {text: 'tetherctl groups create NAME'}), ' and add machines with ',
               h('code', {text: 'agent join-group'}), '. The group password is typed on the machines only.'],
      }),
    }));
}

export async function renderDetail(view, ctx) {
  const [group, machines] = await Promise.all([
    call('GroupService', 'GetGroup', {groupId: ctx.params.id}),
    listAll('MachineService', 'ListMachines', 'machines', {groupId: ctx.params.id}),
  ]);
  const keyId = await keyIdHex(group.groupPub);
  draw(view, ctx, group, machines, keyId);
}

function draw(view, ctx, group, machines, keyId) {
  ctx.setTitle(group.name);
  const role = myRole(group, ctx.user);
  const slot = errorSlot();
  const machineById = new Map(machines.map((m) => [m.machineId, m]));
  const members = (group.machineIds || []).map((id) => machineById.get(id) || {machineId: id, name: id});
  redraw(view,
    pageHeader({
      title: group.name,
      subtitle: pluralize(members.length, 'machine'),
      back: {href: '#/groups', label: 'Machine groups'},
      actions: [
        linkButton('New connection', `#/connections/new?group=${encodeURIComponent(group.groupId)}`, {kind: 'primary', iconName: 'plus'}),
        role === 'owner' ? button('Delete group', {kind: 'danger', iconName: 'trash', onClick: async () => {
          const ok = await confirmDialog({
            title: `Delete ${group.name}?`,
            body: h('p', {text: 'The group and its wrapped key are removed; every connection to the group is deleted with its sealed credentials.'}),
          });
          if (!ok) return;
          try {
            await call('GroupService', 'DeleteGroup', {groupId: group.groupId});
            toast(`Group ${group.name} deleted.`);
            ctx.navigate('#/groups');
          } catch (e) {
            slot.show(e, {title: 'Could not delete the group'});
          }
        }}) : null,
      ],
    }),
    slot.el,
    h('div', {class: 'grid-2'},
      card('Details', details([
        ['Group id', h('code', {text: group.groupId})],
        ['Owner', ownerLabel(group.ownerUserId, ctx.user)],
        ['Your role', h('span', {text: role || '—'})],
        ['Created', h('span', {text: formatTime(group.createdAtUnixMs)})],
        ['Credential key id', h('code', {class: 'wrap', text: keyId || '—'})],
      ])),
      card('Members', table({
        caption: 'Members',
        columns: [
          {label: 'Machine', cell: (m) => h('a', {href: `#/machines/${encodeURIComponent(m.machineId)}`, text: m.name})},
          {label: 'Status', cell: (m) => machineStatusPill(m.status)},
          {label: '', class: 'cell-actions', cell: (m) => role === 'owner'
            ? button('Remove', {kind: 'ghost', onClick: async () => {
              const ok = await confirmDialog({
                title: `Remove ${m.name} from ${group.name}?`,
                body: h('p', {text: 'The machine keeps its copy of the group key until it is re-registered; it no longer receives the group\u2019s runs.'}),
                confirmLabel: 'Remove',
              });
              if (!ok) return;
              try {
                const updated = await call('GroupService', 'LeaveGroup', {groupId: group.groupId, machineId: m.machineId});
                toast(`${m.name} left ${group.name}.`);
                draw(view, ctx, updated, machines, keyId);
              } catch (e) {
                slot.show(e, {title: 'Could not remove the machine'});
              }
            }})
            : null},
        ],
        rows: members,
        empty: h('p', {class: 'muted', text: 'No machine has joined yet (agent join-group).'}),
      }))),
    sharesCard({
      what: 'Group',
      shares: group.sharedWith,
      canManage: role === 'owner',
      share: (userName, shareRole) => call('GroupService', 'ShareGroup', {groupId: group.groupId, userName, role: shareRole}),
      unshare: (userName) => call('GroupService', 'UnshareGroup', {groupId: group.groupId, userName}),
      onChange: (updated) => draw(view, ctx, updated, machines, keyId),
    }));
}
