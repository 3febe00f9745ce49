// Reading a stored (already validated) flow definition: its inputs, outputs and actions in the
// depth-first order the runner numbers them (JobEvent.ActionStarted.index, FlowError.action_index).

export function parseDefinition(text) {
  try {
    const value = JSON.parse(text || '');
    return value && typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

// [{index, path, type, depth, description, summary}] in pre-order: an action, then its `then`,
// `else` and `body` actions (the order docs/FLOWS.md defines), nested ones included.
export function flattenActions(definition) {
  const out = [];
  function walk(actions, basePath, depth) {
    if (!Array.isArray(actions)) return;
    actions.forEach((action, i) => {
      const path = `${basePath}[${i}]`;
      const a = action && typeof action === 'object' ? action : {};
      out.push({index: out.length, path, type: String(a.action || '?'), depth,
                description: typeof a.description === 'string' ? a.description : '', summary: summarize(a)});
      for (const key of ['then', 'else', 'body']) {
        if (Array.isArray(a[key])) walk(a[key], `${path}.${key}`, depth + 1);
      }
    });
  }
  walk(definition ? definition.actions : [], '$.actions', 0);
  return out;
}

// One line on what an action does, for outlines ("/bin/hostname", "Greeting = hello %Who%").
function summarize(a) {
  switch (a.action) {
    case 'Variables.SetVariable': return `${a.variable} = ${a.value}`;
    case 'System.RunApplication': return [a.path, ...(Array.isArray(a.arguments) ? a.arguments : [])].join(' ');
    case 'File.ReadText': return `${a.path} → ${a.variable}`;
    case 'File.WriteText': return `${a.append ? 'append to' : 'write'} ${a.path}`;
    case 'Folder.Create': return String(a.path);
    case 'Flow.If': return a.condition ? `${a.condition.left} ${a.condition.operator} ${a.condition.right ?? ''}`.trim() : '';
    case 'Flow.Loop': return `${a.times} times${a.index_variable ? ` (${a.index_variable})` : ''}`;
    case 'Flow.Wait': return `${a.duration_ms} ms`;
    case 'Flow.Fail': return String(a.message);
    default: return '';
  }
}

export function inputsOf(definition) {
  return Array.isArray(definition?.inputs) ? definition.inputs.filter((x) => x && x.name) : [];
}

export function outputsOf(definition) {
  return Array.isArray(definition?.outputs) ? definition.outputs.filter((x) => x && x.name) : [];
}

// A flow's default value shown as the runner keeps it (text).
export function defaultText(input) {
  if (!('default' in input)) return null;
  return typeof input.default === 'string' ? input.default : JSON.stringify(input.default);
}
