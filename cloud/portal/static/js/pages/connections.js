// Connections: a target (machine, group or cluster) plus an account. The password is sealed in
// this browser with HPKE to the target's public key (envelope.js); the cloud receives and stores
// only the envelope, which only the holder of the target's private key can open. That protects
// the password from whoever reads the cloud's database, not from a compromised cloud server: this
// page's code and the target's key both come from the cloud. So the form shows the key id it
// seals to, for a careful user to compare. The password is never stored (not in sessionStorage,
// the URL or a log), and its input is emptied as soon as the form is submitted.
import {base64ToBytes, bytesToHex, call, listAll} from '../api.js';
import {h, icon, replace} from '../dom.js';
import {idCell, machineStatusPill, modeLabel, targetOf, timeCell} from '../format.js';
import {button, card, confirmDialog, emptyState, errorSlot, field, linkButton, NOT_A_LOGIN, pageHeader, select, table, textInput, toast, whileBusy} from '../ui.js';
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
      subtitle: 'A target and the account flows run as. Passwords are sealed in your browser to the target\u2019s key; the cloud stores only ciphertext.',
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
async function fetchTargetKey(kind, id, signal) {
  let base64;
  if (kind === 'machine') base64 = (await call('MachineService', 'GetMachine', {machineId: id}, {signal})).x25519Pub;
  else if (kind === 'group') base64 = (await call('GroupService', 'GetGroup', {groupId: id}, {signal})).groupPub;
  else base64 = (await call('ClusterService', 'GetCluster', {clusterId: id}, {signal})).clusterPub;
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
  // Not the user's own login: no autofill, and password managers are asked not to offer saving it.
  const usernameField = field({label: 'Username', required: true,
    control: textInput({name: 'username', ...NOT_A_LOGIN, placeholder: 'account on the desktop'})});
  const passwordField = field({label: 'Password', required: true,
    control: h('input', {type: 'password', name: 'password', class: 'input', ...NOT_A_LOGIN, spellcheck: 'false'}),
    help: 'Sealed in this browser; this field is emptied as soon as you submit.'});

  // The note under the fields: what the password is sealed to, with the target's key id (the
  // recipient key id the envelope carries: the first 16 bytes of SHA-256 of its public key), so it
  // can be compared with what the desktop's owner knows it to be. `shown` is the key id on screen.
  const sealNote = h('div', {class: 'seal-note'});
  let shown = {target: '', keyId: ''};
  let describing = 0;
  async function describeTarget() {
    const target = targetField.control.value;
    const token = ++describing;
    shown = {target, keyId: ''};
    const [kind, id] = target.split(':');
    if (!kind) {
      replace(sealNote, icon('lock'), h('span', {text: 'Choose a target: the password will be sealed to its public key.'}));
      return;
    }
    const collection = {machine: 'machines', group: 'groups', cluster: 'clusters'}[kind];
    const item = directory[collection].get(id);
    const keyIdEl = h('code', {class: 'key-id', title: 'first 16 bytes of SHA-256 of the target\u2019s X25519 public key', text: 'fetching…'});
    replace(sealNote, icon('lock'), h('div', {},
      h('span', {}, 'The password is encrypted in this browser with HPKE (X25519, HKDF-SHA256, AES-256-GCM) to the public key of ',
        h('strong', {text: item ? item.name : id}), ', bound to this connection\u2019s id; the cloud stores only the ciphertext. ',
        'This page and the key come from the cloud: that guards the password against a leaked database, not against a compromised cloud server.'),
      h('div', {class: 'seal-key'}, 'Key id ', keyIdEl)),
      kind === 'machine' && item ? machineStatusPill(item.status) : null);
    try {
      const [key, {recipientKeyId}] = await Promise.all([fetchTargetKey(kind, id, ctx.signal), import('../envelope.js')]);
      const keyId = bytesToHex(await recipientKeyId(key));
      if (token !== describing) return;
      shown = {target, keyId};
      keyIdEl.textContent = keyId;
      keyIdEl.dataset.keyId = keyId;
    } catch (e) {
      if (token !== describing) return;
      keyIdEl.textContent = `unknown (${e.message})`;
    }
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
    // The password leaves the input now, whatever happens next (a key that cannot be fetched, a
    // module that does not load, a refused request): only this local holds it until it is sealed.
    let password = passwordField.control.value;
    passwordField.control.value = '';
    const askAgain = () => passwordField.setError('For safety the password was cleared when you submitted; type it again to retry.');
    await whileBusy(form, submit, 'Sealing…', async () => {
      let request;
      try {
        const recipientPublicKey = await fetchTargetKey(kind, id);
        const {recipientKeyId, sealCredentials} = await import('../envelope.js');
        const keyId = bytesToHex(await recipientKeyId(recipientPublicKey));
        if (shown.target === targetField.control.value && shown.keyId && shown.keyId !== keyId) {
          describeTarget();
          throw new Error(`the target's key changed since its key id was shown (now ${keyId}); check it again`);
        }
        const connectionId = crypto.randomUUID();  // bound into the envelope's aad
        const sealedCredentials = await sealCredentials({recipientPublicKey, connectionId, username, password});
        request = {connectionId, name, target: targetRequest(kind, id), username, sealedCredentials,
                   mode: modeField.control.value};
      } catch (e) {
        slot.show(e, {title: 'The credentials could not be sealed'});
        askAgain();
        return;
      } finally {
        password = '';  // drop the reference (a JS string cannot be wiped)
      }
      try {
        const connection = await call('ConnectionService', 'CreateConnection', request);
        toast(`Connection ${connection.name} saved; its password is sealed to ${kind === 'machine' ? 'the machine' : `the ${kind}`}.`);
        ctx.navigate('#/connections');
      } catch (e) {
        slot.show(e, {title: 'The connection was not saved'});
        askAgain();
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
