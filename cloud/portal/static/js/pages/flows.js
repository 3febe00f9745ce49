// Flows: list, view (definition with line numbers, inputs, outputs, actions), upload a new flow or
// a new version. The cloud validates the definition; its error is shown at the line it names.
import {ApiError, call, listAll} from '../api.js';
import {h, replace} from '../dom.js';
import {formatTime, idCell, runStatePill, timeCell} from '../format.js';
import {codeView, createEditor, prettyJson} from '../editor.js';
import {defaultText, flattenActions, inputsOf, outputsOf, parseDefinition} from '../flowmodel.js';
import {locateFlowError} from '../flowpaths.js';
import {button, card, details, emptyState, errorSlot, field, linkButton, pageHeader, table, textInput, toast, whileBusy} from '../ui.js';
import {redraw} from './common.js';

const STARTER = `{
  "name": "My flow",
  "inputs": [
    {"name": "Who", "type": "text", "default": "world"}
  ],
  "outputs": [{"name": "Greeting"}],
  "actions": [
    {"action": "Variables.SetVariable", "variable": "Greeting", "value": "hello %Who%"}
  ]
}
`;

export async function renderList(view, ctx) {
  const flows = await listAll('FlowService', 'ListFlows', 'flows');
  flows.sort((a, b) => a.name.localeCompare(b.name));
  redraw(view,
    pageHeader({
      title: 'Flows',
      subtitle: 'Desktop flow definitions (docs/FLOWS.md). Every upload is checked by the cloud before it is stored.',
      actions: [linkButton('Upload flow', '#/flows/new', {kind: 'primary', iconName: 'upload'})],
    }),
    table({
      caption: 'Flows',
      columns: [
        {label: 'Name', cell: (f) => h('div', {class: 'cell-main'},
          h('a', {href: `#/flows/${encodeURIComponent(f.flowId)}`, class: 'strong', text: f.name}),
          h('div', {class: 'cell-sub'}, idCell(f.flowId, 12)))},
        {label: 'Latest version', cell: (f) => h('span', {class: 'badge badge-version', text: `v${f.version}`})},
        {label: 'Updated', cell: (f) => timeCell(f.createdAtUnixMs)},
        {label: '', class: 'cell-actions', cell: (f) => h('div', {class: 'row-actions'},
          linkButton('Run', `#/runs/new?flow=${encodeURIComponent(f.flowId)}`, {kind: 'ghost', iconName: 'run'}))},
      ],
      rows: flows,
      rowProps: (f) => ({dataset: {flowName: f.name}}),
      empty: emptyState({
        iconName: 'flow',
        title: 'No flows yet',
        body: 'Upload a flow definition (JSON): the cloud checks it and shows any error at its line.',
        action: linkButton('Upload flow', '#/flows/new', {kind: 'primary', iconName: 'upload'}),
      }),
    }));
}

export async function renderDetail(view, ctx) {
  const version = Number(ctx.query.get('version') || 0);
  const [flow, runs] = await Promise.all([
    call('FlowService', 'GetFlow', {flowId: ctx.params.id, version}),
    call('RunService', 'ListRuns', {flowId: ctx.params.id, pageSize: 8}),
  ]);
  const latest = version ? (await call('FlowService', 'GetFlow', {flowId: ctx.params.id, version: 0})).version : flow.version;
  ctx.setTitle(flow.name);
  const definition = parseDefinition(flow.definitionJson);
  const inputs = inputsOf(definition);
  const outputs = outputsOf(definition);
  const actions = flattenActions(definition);
  const versions = [];
  for (let v = latest; v >= 1 && versions.length < 12; v--) versions.push(v);

  redraw(view,
    pageHeader({
      title: flow.name,
      subtitle: definition && definition.name !== flow.name ? `\u201c${definition.name}\u201d` : null,
      back: {href: '#/flows', label: 'Flows'},
      actions: [
        linkButton('Upload new version', `#/flows/${encodeURIComponent(flow.flowId)}/edit`, {iconName: 'upload'}),
        linkButton('Run this flow', `#/runs/new?flow=${encodeURIComponent(flow.flowId)}`, {kind: 'primary', iconName: 'run'}),
      ],
    }),
    h('nav', {class: 'tabs', 'aria-label': 'Versions'}, versions.map((v) =>
      h('a', {class: ['tab', v === flow.version ? 'active' : null],
              href: `#/flows/${encodeURIComponent(flow.flowId)}${v === latest ? '' : `?version=${v}`}`,
              'aria-current': v === flow.version ? 'page' : null,
              text: v === latest ? `v${v} (latest)` : `v${v}`}))),
    h('div', {class: 'grid-2'},
      card('Details', details([
        ['Flow id', h('code', {text: flow.flowId})],
        ['Version', h('span', {text: `v${flow.version} of ${latest}`})],
        ['Created', h('span', {text: formatTime(flow.createdAtUnixMs)})],
        ['Actions', h('span', {text: String(actions.length)})],
      ])),
      card('Inputs and outputs',
        table({
          caption: 'Inputs',
          columns: [
            {label: 'Input', cell: (i) => h('code', {text: i.name})},
            {label: 'Type', cell: (i) => i.type},
            {label: 'Default', cell: (i) => defaultText(i) === null ? h('span', {class: 'badge badge-high', text: 'required'}) : h('code', {text: defaultText(i)})},
            {label: 'Description', cell: (i) => i.description || ''},
          ],
          rows: inputs,
          empty: h('p', {class: 'muted', text: 'No inputs.'}),
        }),
        outputs.length ? h('p', {class: 'outputs-line'}, 'Outputs: ',
          outputs.map((o, i) => [i ? ', ' : '', h('code', {title: o.description || '', text: o.name})])) : null)),
    card('Actions', h('ol', {class: 'outline'}, actions.map((a) =>
      h('li', {class: ['outline-item', `depth-${Math.min(a.depth, 6)}`]},
        h('span', {class: 'outline-index', text: String(a.index)}),
        h('span', {class: 'outline-type', text: a.type}),
        h('span', {class: 'outline-summary', text: a.description || a.summary}))))),
    card('Definition', codeView(prettyJson(flow.definitionJson))),
    card('Recent runs', table({
      caption: 'Recent runs',
      columns: [
        {label: 'Run', cell: (r) => h('a', {href: `#/runs/${encodeURIComponent(r.runId)}`}, idCell(r.runId, 12))},
        {label: 'State', cell: (r) => runStatePill(r.state)},
        {label: 'Version', cell: (r) => `v${r.flowVersion}`},
        {label: 'Created', cell: (r) => timeCell(r.createdAtUnixMs)},
      ],
      rows: runs.runs || [],
      empty: h('p', {class: 'muted', text: 'This flow has not run yet.'}),
    })));
}

// The upload form, for a new flow (flow = null) or a new version of `flow`.
function uploadForm(ctx, flow) {
  const nameField = flow ? null : field({label: 'Flow name', required: true,
    control: textInput({name: 'name', maxlength: 128, placeholder: 'e.g. nightly-backup'}),
    help: 'Unique among your flows; runs and tetherctl refer to the flow by it.'});
  const fileInput = h('input', {type: 'file', accept: '.json,application/json', class: 'visually-hidden', id: 'flow-file'});
  const fileButton = h('label', {for: 'flow-file', class: 'btn btn-secondary'}, 'Open a .json file…');
  const fileName = h('span', {class: 'muted file-name'});
  const editor = createEditor({value: flow ? prettyJson(flow.definitionJson) : STARTER});
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    editor.setValue(await file.text());
    fileName.textContent = file.name;
    if (nameField && !nameField.control.value.trim()) {
      nameField.control.value = file.name.replace(/\.json$/i, '');
    }
    fileInput.value = '';
  });
  const slot = errorSlot();
  const submit = button(flow ? 'Validate and save version' : 'Validate and upload', {kind: 'primary', type: 'submit', iconName: 'upload'});
  const form = h('form', {class: 'form', novalidate: true},
    nameField ? nameField.el : null,
    h('div', {class: 'field'},
      h('div', {class: 'field-label-row'},
        h('label', {for: 'flow-definition', text: 'Definition (JSON)'}),
        h('div', {class: 'file-picker'}, fileName, fileInput, fileButton)),
      editor.el),
    slot.el,
    h('div', {class: 'form-actions'},
      linkButton('Cancel', flow ? `#/flows/${encodeURIComponent(flow.flowId)}` : '#/flows'), submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    slot.clear();
    editor.clearError();
    const name = nameField ? nameField.control.value.trim() : '';
    if (nameField) {
      nameField.setError(name ? '' : 'Give the flow a name.');
      if (!name) {
        nameField.control.focus();
        return;
      }
    }
    const text = editor.value;
    await whileBusy(form, submit, 'Validating…', async () => {
      try {
        const saved = flow
          ? await call('FlowService', 'UpdateFlow', {flowId: flow.flowId, definitionJson: text})
          : await call('FlowService', 'CreateFlow', {name, definitionJson: text});
        toast(flow ? `Version ${saved.version} of ${saved.name} saved.` : `Flow ${saved.name} uploaded.`);
        ctx.navigate(`#/flows/${encodeURIComponent(saved.flowId)}`);
      } catch (e) {
        const location = e instanceof ApiError && e.code === 'INVALID_ARGUMENT' ? locateFlowError(text, e.message) : null;
        if (location) {
          editor.markError(e.message, location);
        } else {
          if (nameField && e.code === 'ALREADY_EXISTS') nameField.setError('You already have a flow with this name.');
          slot.show(e, {title: flow ? 'The version was not saved' : 'The flow was not uploaded'});
        }
      }
    });
  });
  return {form, focus: () => (nameField ? nameField.control : editor.textarea).focus()};
}

export async function renderNew(view, ctx) {
  const {form, focus} = uploadForm(ctx, null);
  replace(view,
    pageHeader({
      title: 'Upload a flow',
      subtitle: 'Paste or open a definition. The cloud validates it; an error is shown at the line it concerns.',
      back: {href: '#/flows', label: 'Flows'},
    }),
    card(null, form));
  focus();
}

export async function renderEdit(view, ctx) {
  const flow = await call('FlowService', 'GetFlow', {flowId: ctx.params.id, version: 0});
  ctx.setTitle(`${flow.name}: new version`);
  const {form} = uploadForm(ctx, flow);
  replace(view,
    pageHeader({
      title: `New version of ${flow.name}`,
      subtitle: `Currently v${flow.version}; the version you save becomes the latest.`,
      back: {href: `#/flows/${encodeURIComponent(flow.flowId)}`, label: flow.name},
    }),
    card(null, form));
}
