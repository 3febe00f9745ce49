// One run, live: its state, the flow's actions as the agent reports them, log lines, outputs and
// history. The REST WatchRun answers at once with the durable events after `sinceSeq`; the page
// polls it every 500 ms until the run reaches a terminal state.
import {ApiError, call} from '../api.js';
import {h, icon, replace} from '../dom.js';
import {enumLabel, formatDuration, formatTime, idCell, priorityBadge, runStateLabel, runStatePill, targetOf, TERMINAL_RUN_STATES, toNumber} from '../format.js';
import {flattenActions, parseDefinition} from '../flowmodel.js';
import {button, card, confirmDialog, details, errorSlot, linkButton, pageHeader, table, toast} from '../ui.js';
import {loadDirectory, targetKindLabel, targetLink} from './common.js';

const POLL_MS = 500;
const MAX_BACKOFF_MS = 5000;

export async function renderDetail(view, ctx) {
  const runId = ctx.params.id;
  const signal = ctx.signal;  // abandons the page's requests when the user moves on
  let run = await call('RunService', 'GetRun', {runId}, {signal});
  const [flow, connection, directory] = await Promise.all([
    call('FlowService', 'GetFlow', {flowId: run.flowId, version: run.flowVersion}, {signal}).catch(() => null),
    call('ConnectionService', 'GetConnection', {connectionId: run.connectionId}, {signal}).catch((e) => {
      if (e instanceof ApiError && e.code === 'NOT_FOUND') return null;
      throw e;
    }),
    loadDirectory({signal}),
  ]);
  if (!ctx.isCurrent()) return;  // moved on during the first load: no polling
  ctx.setTitle(`Run ${runId.slice(0, 12)}`);
  const outline = flattenActions(flow ? parseDefinition(flow.definitionJson) : null);

  // What the events have told so far.
  const actions = new Map();  // index -> {state: 'running'|'ok'|'failed', runs, durationMs, message, name, path}
  const logs = [];            // {stream, text, at}
  const outputs = new Map();  // name -> value (from Output events; run.outputs wins at the end)
  const history = [];         // state changes: {seq, at, state, detail}
  let lastSeq = 0;

  const headerActions = h('div', {class: 'page-actions'});
  const statePill = h('span', {class: 'run-state'});
  const stateDetail = h('p', {class: 'page-subtitle'});
  const liveSlot = errorSlot();
  const actionSlot = errorSlot();
  const progressBox = h('div', {});
  const outputsBox = h('div', {});
  const errorBox = h('div', {});
  const logBox = h('pre', {class: 'log', tabindex: '0', 'aria-label': 'Run log'});
  const detailsBox = h('div', {});
  const historyBox = h('div', {});

  function apply(event) {
    const seq = toNumber(event.seq);
    if (seq <= lastSeq) return;
    lastSeq = seq;
    const at = toNumber(event.timestampUnixMs);
    if (event.stateChanged) {
      run = event.stateChanged;
      history.push({seq, at, state: run.state, detail: run.stateDetail});
      return;
    }
    const job = event.jobEvent;
    if (!job) return;
    if (job.actionStarted) {
      const a = job.actionStarted;
      const entry = actions.get(a.index) || {runs: 0};
      actions.set(a.index, {...entry, state: 'running', runs: entry.runs + 1, name: a.name, path: a.path, startedAt: toNumber(job.timestampUnixMs)});
    } else if (job.actionFinished) {
      const a = job.actionFinished;
      const entry = actions.get(a.index) || {runs: 1};
      actions.set(a.index, {...entry, state: a.ok ? 'ok' : 'failed', name: a.name, path: a.path,
                            durationMs: toNumber(entry.durationMs) + toNumber(a.durationMs), message: a.message});
    } else if (job.logLine) {
      logs.push({stream: job.logLine.stream, text: job.logLine.text, at: toNumber(job.timestampUnixMs)});
    } else if (job.output) {
      outputs.set(job.output.name, job.output.value);
    }
  }

  function terminal() {
    return TERMINAL_RUN_STATES.has(run.state);
  }

  async function cancel(buttonEl) {
    const ok = await confirmDialog({
      title: 'Cancel this run?',
      body: h('p', {text: run.state === 'RUN_STATE_QUEUED'
        ? 'It has not been sent to a desktop yet: it is cancelled at once.'
        : 'The desktop is asked to stop it; its process group is killed.'}),
      confirmLabel: 'Cancel run',
    });
    if (!ok) return;
    buttonEl.disabled = true;
    actionSlot.clear();
    try {
      run = await call('RunService', 'CancelRun', {runId, reason: `cancelled in the portal by ${ctx.user.name}`});
      toast(terminal() ? 'Run cancelled.' : 'Cancel requested; waiting for the desktop.');
      render();
      poll.kick();
    } catch (e) {
      actionSlot.show(e, {title: 'Could not cancel the run'});
      buttonEl.disabled = false;
    }
  }

  function renderProgress() {
    const rows = outline.length ? outline : [...actions.keys()].sort((a, b) => a - b).map((index) => ({index, ...actions.get(index), type: actions.get(index).name, depth: 0}));
    const done = rows.filter((a) => ['ok', 'failed'].includes(actions.get(a.index)?.state)).length;
    const failed = rows.some((a) => actions.get(a.index)?.state === 'failed');
    const percent = rows.length ? Math.round((100 * done) / rows.length) : (terminal() ? 100 : 0);
    const bar = h('div', {class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(percent)},
      h('div', {class: ['progress-fill', `w-${Math.round(percent / 5) * 5}`, failed ? 'progress-bad' : null,
                        run.state === 'RUN_STATE_SUCCEEDED' ? 'progress-ok' : null]}));
    const skippedLabel = terminal() ? 'not run' : 'pending';
    replace(progressBox,
      h('div', {class: 'progress-head'},
        h('span', {text: `${done} of ${rows.length} actions finished`}), bar),
      rows.length ? h('ol', {class: 'steps'}, rows.map((a) => {
        const s = actions.get(a.index);
        const state = s ? s.state : 'pending';
        return h('li', {class: ['step', `step-${state}`, `depth-${Math.min(a.depth || 0, 6)}`], dataset: {index: a.index, state}},
          h('span', {class: 'step-icon', 'aria-hidden': 'true'}),
          h('span', {class: 'step-index', text: String(a.index)}),
          h('div', {class: 'step-main'},
            h('div', {class: 'step-title'}, h('span', {class: 'step-type', text: a.type}),
              a.description || a.summary ? h('span', {class: 'step-summary', text: a.description || a.summary}) : null),
            s && s.message ? h('div', {class: ['step-message', state === 'failed' ? 'is-error' : null], text: s.message}) : null),
          h('span', {class: 'step-meta', text: s
            ? [s.runs > 1 ? `×${s.runs}` : '', state === 'running' ? 'running…' : formatDuration(s.durationMs)].filter(Boolean).join(' · ')
            : skippedLabel}));
      })) : h('p', {class: 'muted', text: terminal() ? 'No action ran.' : 'Waiting for the desktop to start the flow…'}));
  }

  function renderOutputs() {
    const merged = new Map(outputs);
    for (const [k, v] of Object.entries(run.outputs || {})) merged.set(k, v);
    replace(outputsBox, table({
      caption: 'Outputs',
      columns: [
        {label: 'Output', cell: ([name]) => h('code', {text: name})},
        {label: 'Value', cell: ([, value]) => h('pre', {class: 'value', text: value})},
      ],
      rows: [...merged.entries()],
      rowProps: ([name]) => ({dataset: {output: name}}),
      empty: h('p', {class: 'muted', text: terminal() ? 'The run produced no outputs.' : 'Outputs appear as the flow sets them.'}),
    }));
  }

  function renderError() {
    const e = run.error;
    if (!e || !e.message) {
      replace(errorBox);
      return;
    }
    replace(errorBox, h('div', {class: 'alert alert-error', role: 'alert'},
      h('div', {class: 'alert-title'}, `Run ${enumLabel(run.state, 'RUN_STATE_')}`),
      h('div', {class: 'alert-body', text: e.message}),
      e.actionName ? h('div', {class: 'alert-meta'}, 'in action ', h('code', {text: `${e.actionIndex ?? '?'} ${e.actionName}`}),
                       e.actionPath ? [' at ', h('code', {text: e.actionPath})] : null) : null));
  }

  let shownLogLines = 0;
  function renderLogs() {
    if (!logs.length) {
      replace(logBox, h('span', {class: 'muted', text: terminal() ? 'No log lines.' : 'Log lines appear here as the flow runs.'}));
      shownLogLines = 0;
      return;
    }
    if (shownLogLines === 0) replace(logBox);
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    for (const line of logs.slice(shownLogLines)) {
      const stream = enumLabel(line.stream, 'STREAM_') || 'log';
      logBox.append(h('div', {class: ['log-line', `log-${stream}`]},
        h('span', {class: 'log-time', text: line.at ? new Date(line.at).toLocaleTimeString() : ''}),
        h('span', {class: 'log-stream', text: stream}),
        h('span', {class: 'log-text', text: line.text})));
    }
    shownLogLines = logs.length;
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  function renderDetails() {
    const t = targetOf(run.target);
    const inputs = Object.entries(run.inputs || {});
    const started = toNumber(run.startedAtUnixMs);
    const finished = toNumber(run.finishedAtUnixMs);
    replace(detailsBox, details([
      ['Run id', h('code', {text: run.runId})],
      ['Flow', h('span', {}, h('a', {href: `#/flows/${encodeURIComponent(run.flowId)}`, text: flow ? flow.name : run.flowId}), ` v${run.flowVersion}`)],
      ['Connection', connection ? h('span', {}, connection.name, h('span', {class: 'muted', text: ` (${connection.username})`})) : h('span', {class: 'muted', text: 'deleted'})],
      ['Target', h('span', {}, `${targetKindLabel(t.kind)} `, targetLink(directory, t.kind, t.id))],
      ['Machine', run.machineId ? targetLink(directory, 'machine', run.machineId) : h('span', {class: 'muted', text: 'not dispatched yet'})],
      ['Priority', priorityBadge(run.priority)],
      ['Inputs', inputs.length ? h('div', {class: 'kv'}, inputs.map(([k, v]) => h('div', {}, h('code', {text: k}), ' = ', h('code', {text: v})))) : h('span', {class: 'muted', text: 'none'})],
      ['Timeout', h('span', {text: formatDuration(run.timeoutMs)})],
      ['Created', h('span', {text: formatTime(run.createdAtUnixMs)})],
      ['Accepted', h('span', {text: formatTime(run.dispatchedAtUnixMs)})],
      ['Started', h('span', {text: formatTime(run.startedAtUnixMs)})],
      ['Finished', h('span', {text: formatTime(run.finishedAtUnixMs)})],
      started ? ['Duration', h('span', {text: formatDuration((finished || Date.now()) - started)})] : null,
      ['Delivery attempts', h('span', {text: String(run.attemptCount || 0)})],
      run.jobId ? ['Job id', idCell(run.jobId, 16)] : null,
    ]));
  }

  function renderHistory() {
    replace(historyBox, history.length ? h('ol', {class: 'timeline'}, history.map((x) =>
      h('li', {class: 'timeline-item'},
        runStatePill(x.state),
        h('time', {title: formatTime(x.at), text: x.at ? new Date(x.at).toLocaleTimeString() : ''}),
        x.detail ? h('span', {class: 'timeline-detail', text: x.detail}) : null)))
      : h('p', {class: 'muted', text: 'No state change recorded yet.'}));
  }

  function renderHeader() {
    replace(statePill, runStatePill(run.state));
    stateDetail.textContent = run.cancelRequested && !terminal()
      ? 'Cancel requested: waiting for the desktop to confirm.'
      : (run.stateDetail && run.stateDetail !== runStateLabel(run.state) ? run.stateDetail : '');
    const again = linkButton('Run again', `#/runs/new?flow=${encodeURIComponent(run.flowId)}&connection=${encodeURIComponent(run.connectionId)}`, {iconName: 'run'});
    const cancelButton = !terminal()
      ? button(run.cancelRequested ? 'Cancelling…' : 'Cancel run', {kind: 'danger', iconName: 'stop', disabled: run.cancelRequested,
                                                                   onClick: (e) => cancel(e.currentTarget)})
      : null;
    replace(headerActions, again, cancelButton);
  }

  function render() {
    renderHeader();
    renderProgress();
    renderOutputs();
    renderError();
    renderLogs();
    renderDetails();
    renderHistory();
  }

  // Polling WatchRun: every POLL_MS while the run is live; after an error, back off and say so.
  const poll = (() => {
    let timer = null;
    let stopped = false;
    let backoff = POLL_MS;
    let inFlight = false;
    async function tick() {
      if (stopped || inFlight) return;
      inFlight = true;
      try {
        const answer = await call('RunService', 'WatchRun', {runId, sinceSeq: String(lastSeq)}, {signal});
        if (stopped) return;
        for (const event of answer.events || []) apply(event);
        if (terminal()) run = await call('RunService', 'GetRun', {runId}, {signal});
        if (stopped) return;
        backoff = POLL_MS;
        liveSlot.clear();
        render();
      } catch (e) {
        if (stopped || e.status === 401) return;
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
        liveSlot.show(e, {title: `Live updates interrupted; retrying in ${Math.round(backoff / 100) / 10} s`});
      } finally {
        inFlight = false;
      }
      if (!stopped && !terminal()) timer = setTimeout(tick, backoff);
    }
    ctx.onCleanup(() => {
      stopped = true;
      clearTimeout(timer);
    });
    return {
      start: tick,
      kick() {
        clearTimeout(timer);
        tick();
      },
    };
  })();

  replace(view,
    h('header', {class: 'page-header'},
      h('div', {class: 'page-title'},
        h('a', {class: 'back-link', href: '#/runs'}, icon('back'), 'Runs'),
        h('h1', {}, `Run `, h('code', {class: 'title-id', title: runId, text: runId.slice(0, 12)}), statePill),
        stateDetail),
      headerActions),
    liveSlot.el,
    actionSlot.el,
    errorBox,
    h('div', {class: 'grid-run'},
      h('div', {class: 'col'},
        card('Progress', progressBox),
        card('Outputs', outputsBox),
        card('Log', logBox)),
      h('div', {class: 'col'},
        card('Details', detailsBox),
        card('History', historyBox))));
  render();
  await poll.start();
}
