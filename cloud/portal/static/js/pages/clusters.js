// Gateway clusters: on-premises gateways sharing a key derived from a recovery key that never
// leaves the site; the machines behind them are reached through the members.
import {call, listAll} from '../api.js';
import {h} from '../dom.js';
import {formatTime, idCell, machineStatusPill, pluralize, timeCell} from '../format.js';
import {button, card, confirmDialog, details, emptyState, errorSlot, linkButton, pageHeader, table, toast} from '../ui.js';
import {keyIdHex, myRole, ownerLabel, redraw, sharedWithCell} from './common.js';

const LIVE = ['MACHINE_STATUS_ONLINE', 'MACHINE_STATUS_BUSY'];

export async function renderList(view, ctx) {
  const [clusters, machines] = await Promise.all([
    listAll('ClusterService', 'ListClusters', 'clusters'),
    listAll('MachineService', 'ListMachines', 'machines'),
  ]);
  clusters.sort((a, b) => a.name.localeCompare(b.name));
  redraw(view,
    pageHeader({
      title: 'Gateway clusters',
      subtitle: 'On-premises gateways: desktops behind them need no route to the internet, only to a member.',
    }),
    table({
      caption: 'Gateway clusters',
      columns: [
        {label: 'Name', cell: (c) => h('div', {class: 'cell-main'},
          h('a', {href: `#/clusters/${encodeURIComponent(c.clusterId)}`, class: 'strong', text: c.name}),
          h('div', {class: 'cell-sub'}, idCell(c.clusterId, 12)))},
        {label: 'Members', cell: (c) => {
          const members = c.members || [];
          const online = members.filter((m) => LIVE.includes(m.status)).length;
          return h('div', {},
            h('div', {text: members.map((m) => m.name).join(', ') || '—'}),
            h('div', {class: 'cell-sub', text: `${online} of ${members.length} online`}));
        }},
        {label: 'Machines behind it', cell: (c) => {
          const behind = machines.filter((m) => m.clusterId === c.clusterId);
          if (!behind.length) return h('span', {class: 'muted', text: 'none'});
          return h('span', {class: 'chips'}, behind.map((m) =>
            h('a', {class: 'chip', href: `#/machines/${encodeURIComponent(m.machineId)}`, text: m.name})));
        }},
        {label: 'Shared with', cell: (c) => sharedWithCell(c.sharedWith)},
        {label: 'Owner', cell: (c) => ownerLabel(c.ownerUserId, ctx.user)},
        {label: 'Created', cell: (c) => timeCell(c.createdAtUnixMs)},
      ],
      rows: clusters,
      rowProps: (c) => ({dataset: {clusterName: c.name}}),
      empty: emptyState({
        iconName: 'cluster',
        title: 'No gateway clusters',
        body: ['Create one on a gateway host with ', h('code', {text: 'gateway create-cluster --cluster NAME'}),
               '; the recovery key stays on the site.'],
      }),
    }));
}

export async function renderDetail(view, ctx) {
  const [cluster, machines] = await Promise.all([
    call('ClusterService', 'GetCluster', {clusterId: ctx.params.id}),
    listAll('MachineService', 'ListMachines', 'machines', {clusterId: ctx.params.id}),
  ]);
  const keyId = await keyIdHex(cluster.clusterPub);
  draw(view, ctx, cluster, machines, keyId);
}

function draw(view, ctx, cluster, machines, keyId) {
  ctx.setTitle(cluster.name);
  const role = myRole(cluster, ctx.user);
  const slot = errorSlot();
  const members = cluster.members || [];
  redraw(view,
    pageHeader({
      title: cluster.name,
      subtitle: `${pluralize(members.length, 'member')}, ${pluralize(machines.length, 'machine')} behind it`,
      back: {href: '#/clusters', label: 'Gateway clusters'},
      actions: [
        linkButton('New connection', `#/connections/new?cluster=${encodeURIComponent(cluster.clusterId)}`, {kind: 'primary', iconName: 'plus'}),
        role === 'owner' ? button('Delete cluster', {kind: 'danger', iconName: 'trash', onClick: async () => {
          const ok = await confirmDialog({
            title: `Delete ${cluster.name}?`,
            body: h('p', {text: 'The cluster and its members are removed; every connection to it is deleted with its sealed credentials.'}),
          });
          if (!ok) return;
          try {
            await call('ClusterService', 'DeleteCluster', {clusterId: cluster.clusterId});
            toast(`Cluster ${cluster.name} deleted.`);
            ctx.navigate('#/clusters');
          } catch (e) {
            slot.show(e, {title: 'Could not delete the cluster'});
          }
        }}) : null,
      ],
    }),
    slot.el,
    h('div', {class: 'grid-2'},
      card('Details', details([
        ['Cluster id', h('code', {text: cluster.clusterId})],
        ['Relay entity', h('code', {text: cluster.entity})],
        ['Owner', ownerLabel(cluster.ownerUserId, ctx.user)],
        ['Shared with', sharedWithCell(cluster.sharedWith)],
        ['Created', h('span', {text: formatTime(cluster.createdAtUnixMs)})],
        ['Credential key id', h('code', {class: 'wrap', text: keyId || '—'})],
      ])),
      card('Machines behind this cluster', table({
        caption: 'Machines',
        columns: [
          {label: 'Machine', cell: (m) => h('a', {href: `#/machines/${encodeURIComponent(m.machineId)}`, text: m.name})},
          {label: 'Status', cell: (m) => machineStatusPill(m.status)},
        ],
        rows: machines,
        empty: h('p', {class: 'muted', text: 'No agent is registered behind this cluster (agent register --cluster).'}),
      }))),
    card('Members', table({
      caption: 'Members',
      columns: [
        {label: 'Member', cell: (m) => h('div', {class: 'cell-main'}, h('span', {class: 'strong', text: m.name}),
          h('div', {class: 'cell-sub'}, idCell(m.memberId, 12)))},
        {label: 'Status', cell: (m) => machineStatusPill(m.status)},
        {label: 'Joined', cell: (m) => timeCell(m.joinedAtUnixMs)},
        {label: '', class: 'cell-actions', cell: (m) => role === 'owner'
          ? button('Remove', {kind: 'ghost', onClick: async () => {
            const ok = await confirmDialog({
              title: `Remove ${m.name}?`,
              body: h('p', {text: 'Its token renewals are refused from now on; runs go to the other members.'}),
              confirmLabel: 'Remove',
            });
            if (!ok) return;
            try {
              const updated = await call('ClusterService', 'RemoveClusterMember', {clusterId: cluster.clusterId, memberId: m.memberId});
              toast(`${m.name} removed.`);
              draw(view, ctx, updated, machines, keyId);
            } catch (e) {
              slot.show(e, {title: 'Could not remove the member'});
            }
          }})
          : null},
      ],
      rows: members,
    })));
}
