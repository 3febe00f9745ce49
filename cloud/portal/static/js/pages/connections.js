// Connections: a target (machine, group or cluster) plus an account. The password is sealed in
// this browser with HPKE to the target's public key (envelope.js); the cloud receives and stores
// only the envelope, which only the target can open. The password is never stored (not in
// sessionStorage, the URL or a log), and its input is emptied as soon as it has been sealed.
import {base64ToBytes, bytesToHex, call, listAll} from '../api.js';
import {h, icon, replace} from '../dom.js';
import {idCell, machineStatusPill, modeLabel, targetOf, timeCell} from '../format.js';
import {button, card, confirmDialog, emptyState, errorSlot, field, linkButton, pageHeader, select, table, textInput, toast, whileBusy} from '../ui.js';
import {loadDirectory, redraw, targetKindLabel, targetLink} from './common.js';

export async function renderList(view, ctx) {
  const [connections, directory] = await Promise.all([
    listAll('ConnectionService', 'ListConnections', 'connections'),
    loadDirectory(),
  ]);
  draw(view, ctx, connections, directory);
}

function draw(view, ctx, connections, directory) {
  const slot = errorSlot();
  connections.sort((a, b) => a.name.localeCompare(b.name));
  redraw(view,
    pageHeader({
      title: 'Connections',
      subtitle: 'A target and the account flows run as. Credentials are sealed to the target\u2019s key; the cloud cannot read them.',
      actions: [linkButton('New connection', '#/connections/new', {kind: 'primary', iconName: 'plus'})],
    }),
    slot.el,
    table({
      caption: 'Connections',
      columns: [
        {label: 'Name', cell: (c) => h('div', {class: 'cell-main'}, h('span', {class: 'strong', text: c.name}),
          h('div', {class: 'cell-sub'}, idCell(c.connectionId, 12)))},
        {label: 'Target', cell: (c) => {
          const t = targetOf(c.target);
          return h('div', {}, targetLink(directory, t.kind, t.id),
            h('div', {class: 'cell-sub', text: targetKindLabel(t.kind)}));
        }},
        {label: 'Account', cell: (c) => h('code', {text: c.username})},
        {label: 'Mode', cell: (c) => h('span', {class: 'badge badge-normal', text: modeLabel(c.mode)})},
        {label: 'Sealed to key', cell: (c) => {
          const hex = c.recipientKeyId ? bytesToHex(base64ToBytes(c.recipientKeyId)) : '';
          return h('span', {class: 'sealed'}, icon('lock'),
            h('code', {class: 'id', title: `recipient key id ${hex}`, text: hex ? `${hex.slice(0, 12)}…` : '—'}));
        }},
        {label: 'Created', cell: (c) => timeCell(c.createdAtUnixMs)},
        {label: '', class: 'cell-actions', cell: (c) => h('div', {class: 'row-actions'},
          linkButton('Run a flow', `#/runs/new?connection=${encodeURIComponent(c.connectionId)}`, {kind: 'ghost', iconName: 'run'}),
          button('Delete', {kind: 'ghost-danger', iconName: 'trash', 'aria-label': `Delete connection ${c.name}`, onClick: async () => {
            const ok = await confirmDialog({
              title: `Delete connection ${c.name}?`,
              body: h('p', {text: 'The connection and its sealed credentials are deleted for good. Queued runs through it will fail.'}),
            });
            if (!ok) return;
            try {
              await call('ConnectionService', 'DeleteConnection', {connectionId: c.connectionId});
              toast(`Connection ${c.name} deleted.`);
              draw(view, ctx, connections.filter((x) => x.connectionId !== c.connectionId), directory);
            } catch (e) {
              slot.show(e, {title: 'Could not delete the connection'});
            }
          }}))},
      ],
      rows: connections,
      rowProps: (c) => ({dataset: {connectionName: c.name}}),
      empty: emptyState({
        iconName: 'connection',
        title: 'No connections yet',
        body: 'Pick a machine, group or gateway cluster and type the account\u2019s username and password: the password is sealed here, in your browser.',
        action: linkButton('New connection', '#/connections/new', {kind: 'primary', iconName: 'plus'}),
      }),
    }));
}

const STATUS_WORD = {
  MACHINE_STATUS_ONLINE: 'online', MACHINE_STATUS_BUSY: 'busy', MACHINE_STATUS_OFFLINE: 'offline',
};

function targetOptions(directory) {
  const byName = (a, b) => a.name.localeCompare(b.name);
  const groups = [];
  const machines = [...directory.machines.values()].sort(byName);
  if (machines.length) {
    groups.push({group: 'Machines', options: machines.map((m) => ({
      value: `machine:${m.machineId}`,
      label: `${m.name} (${STATUS_WORD[m.status] || 'status unknown'}${m.clusterId ? ', behind a gateway' : ''})`,
    }))});
  }
  const machineGroups = [...directory.groups.values()].sort(byName);
  if (machineGroups.length) {
    groups.push({group: 'Machine groups', options: machineGroups.map((g) => ({
      value: `group:${g.groupId}`, label: `${g.name} (${(g.machineIds || []).length} machines)`,
    }))});
  }
  const clusters = [...directory.clusters.values()].sort(byName);
  if (clusters.length) {
    groups.push({group: 'Gateway clusters', options: clusters.map((c) => ({
      value: `cluster:${c.clusterId}`, label: `${c.name} (${(c.members || []).length} members)`,
    }))});
  }
  return groups;
}

// The target's public key (raw X25519, 32 bytes) as the cloud has it now.
async function fetchTargetKey(kind, id) {
  let base64;
  if (kind === 'machine') base64 = (await call('MachineService', 'GetMachine', {machineId: id})).x25519Pub;
  else if (kind === 'group') base64 = (await call('GroupService', 'GetGroup', {groupId: id})).groupPub;
  else base64 = (await call('ClusterService', 'GetCluster', {clusterId: id})).clusterPub;
  const key = base64ToBytes(base64);
  if (key.length !== 32) throw new Error(`the ${kind}'s public key is ${key.length} bytes, not 32`);
  return key;
}

function targetRequest(kind, id) {
  return {machine: {machineId: id}, group: {groupId: id}, cluster: {clusterId: id}}[kind];
}

export async function renderNew(view, ctx) {
  const directory = await loadDirectory();
  const options = targetOptions(directory);
  if (!options.length) {
    replace(view,
      pageHeader({title: 'New connection', back: {href: '#/connections', label: 'Connections'}}),
      emptyState({iconName: 'machine', title: 'Nothing to connect to',
                  body: 'Register a machine (agent register), create a machine group or a gateway cluster first.'}));
    return;
  }
  const preset = ['machine', 'group', 'cluster'].map((k) => ctx.query.get(k) ? `${k}:${ctx.query.get(k)}` : '').find(Boolean);

  const nameField = field({label: 'Connection name', required: true,
    control: textInput({name: 'name', maxlength: 128, placeholder: 'e.g. finance-desk'}),
    help: 'How you pick this connection when you start a run.'});
  const targetField = field({label: 'Target', required: true,
    control: select([{value: '', label: 'Choose a machine, group or cluster…'}, ...options], {name: 'target'}),
    help: 'Machines shared with you are listed too.'});
  if (preset) targetField.control.value = preset;
  const modeField = field({label: 'Mode', control: select([
    {value: 'RUN_MODE_UNATTENDED', label: 'Unattended — the agent signs the account in itself'},
    {value: 'RUN_MODE_ATTENDED', label: 'Attended — runs in the account\u2019s open session'},
  ], {name: 'mode'})});
  const usernameField = field({label: 'Username', required: true,
    control: textInput({name: 'username', autocomplete: 'off', placeholder: 'account on the desktop'})});
  const passwordField = field({label: 'Password', required: true,
    control: h('input', {type: 'password', name: 'password', class: 'input', autocomplete: 'new-password', spellcheck: 'false'}),
    help: 'Sealed in this browser before anything is sent; this field is emptied right after.'});

  const sealNote = h('div', {class: 'seal-note'});
  async function describeTarget() {
    const [kind, id] = targetField.control.value.split(':');
    if (!kind) {
      replace(sealNote, icon('lock'), h('span', {text: 'Choose a target: the password will be sealed to its public key.'}));
      return;
    }
    const collection = {machine: 'machines', group: 'groups', cluster: 'clusters'}[kind];
    const item = directory[collection].get(id);
    replace(sealNote, icon('lock'), h('span', {},
      'The password is encrypted here with HPKE (X25519, HKDF-SHA256, AES-256-GCM) to the public key of ',
      h('strong', {text: item ? item.name : id}), ', bound to this connection\u2019s id. ',
      'The cloud stores the sealed envelope and cannot open it.'),
      kind === 'machine' && item ? machineStatusPill(item.status) : null);
  }
  targetField.control.addEventListener('change', describeTarget);
  describeTarget();

  const slot = errorSlot();
  const submit = button('Seal and save', {kind: 'primary', type: 'submit', iconName: 'lock'});
  const form = h('form', {class: 'form', novalidate: true, autocomplete: 'off'},
    h('div', {class: 'form-grid'}, nameField.el, targetField.el, usernameField.el, passwordField.el, modeField.el),
    sealNote,
    slot.el,
    h('div', {class: 'form-actions'}, linkButton('Cancel', '#/connections'), submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    slot.clear();
    const name = nameField.control.value.trim();
    const [kind, id] = targetField.control.value.split(':');
    const username = usernameField.control.value.trim();
    nameField.setError(name ? '' : 'Give the connection a name.');
    targetField.setError(kind ? '' : 'Choose what the connection runs on.');
    usernameField.setError(username ? '' : 'Enter the account\u2019s username.');
    passwordField.setError(passwordField.control.value ? '' : 'Enter the account\u2019s password.');
    const firstInvalid = form.querySelector('[aria-invalid="true"]');
    if (firstInvalid) {
      firstInvalid.focus();
      return;
    }
    await whileBusy(form, submit, 'Sealing…', async () => {
      let request;
      try {
        const recipientPublicKey = await fetchTargetKey(kind, id);
        const connectionId = crypto.randomUUID();  // bound into the envelope's aad
        const {sealCredentials} = await import('../envelope.js');
        let sealedCredentials;
        try {
          sealedCredentials = await sealCredentials({
            recipientPublicKey, connectionId, username, password: passwordField.control.value,
          });
        } finally {
          passwordField.control.value = '';
        }
        request = {connectionId, name, target: targetRequest(kind, id), username, sealedCredentials,
                   mode: modeField.control.value};
      } catch (e) {
        slot.show(e, {title: 'The credentials could not be sealed'});
        return;
      }
      try {
        const connection = await call('ConnectionService', 'CreateConnection', request);
        toast(`Connection ${connection.name} saved; its password is sealed to ${kind === 'machine' ? 'the machine' : `the ${kind}`}.`);
        ctx.navigate('#/connections');
      } catch (e) {
        slot.show(e, {title: 'The connection was not saved'});
        passwordField.setError('For safety the password was cleared after sealing; type it again to retry.');
      }
    });
  });

  replace(view,
    pageHeader({
      title: 'New connection',
      subtitle: 'Choose a target and the account your flows run as.',
      back: {href: '#/connections', label: 'Connections'},
    }),
    card(null, form));
  nameField.control.focus();
}
