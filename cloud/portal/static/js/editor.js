// The flow editor: a textarea with a line-number gutter, and a read-only view with line numbers.
// A validation error marks its line in the gutter and is shown under the editor with the lines
// around it, like a compiler's diagnostic.
import {h, replace} from './dom.js';

function lineCount(text) {
  let n = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

// createEditor({value, label}) -> {el, textarea, value, setValue, markError, clearError}
export function createEditor({value = '', label = 'Flow definition (JSON)', id = 'flow-definition'} = {}) {
  const gutter = h('div', {class: 'editor-gutter', 'aria-hidden': 'true'});
  const textarea = h('textarea', {
    id, class: 'editor-text', spellcheck: 'false', wrap: 'off', autocomplete: 'off',
    autocapitalize: 'off', 'aria-label': label, rows: 22,
  });
  textarea.value = value;
  const diagnostic = h('div', {class: 'diagnostic-slot', 'aria-live': 'polite'});
  const el = h('div', {class: 'editor-wrap'}, h('div', {class: 'editor'}, gutter, textarea), diagnostic);
  let errorLine = 0;
  let shownLines = 0;

  function renderGutter() {
    const n = lineCount(textarea.value);
    if (n !== shownLines) {
      const numbers = [];
      for (let i = 1; i <= n; i++) numbers.push(h('div', {class: 'gutter-line', dataset: {line: i}, text: String(i)}));
      replace(gutter, numbers);
      shownLines = n;
    }
    for (const marked of gutter.querySelectorAll('.is-error')) marked.classList.remove('is-error');
    if (errorLine) gutter.querySelector(`[data-line="${errorLine}"]`)?.classList.add('is-error');
    gutter.scrollTop = textarea.scrollTop;
  }

  textarea.addEventListener('input', () => {
    // The marked line belongs to the text that was refused; once it changes, the mark is stale.
    if (errorLine) api.clearError();
    renderGutter();
  });
  textarea.addEventListener('scroll', () => { gutter.scrollTop = textarea.scrollTop; });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Tab' && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      textarea.setRangeText('  ', textarea.selectionStart, textarea.selectionEnd, 'end');
      textarea.dispatchEvent(new Event('input'));
    }
  });

  // Selects the line in the textarea and scrolls it into view.
  function goToLine(line, column = 1) {
    const lines = textarea.value.split('\n');
    let start = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    const lineText = lines[line - 1] || '';
    textarea.focus();
    textarea.setSelectionRange(start + Math.min(column - 1, lineText.length), start + lineText.length);
    const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 20;
    textarea.scrollTop = Math.max(0, (line - 4) * lineHeight);
    gutter.scrollTop = textarea.scrollTop;
  }

  const api = {
    el,
    textarea,
    get value() {
      return textarea.value;
    },
    setValue(text) {
      textarea.value = text;
      api.clearError();
      renderGutter();
    },
    // location: {line, column, path, exact} from locateFlowError, or null (no position known).
    markError(message, location) {
      errorLine = location ? location.line : 0;
      renderGutter();
      const lines = textarea.value.split('\n');
      const excerpt = [];
      if (location) {
        for (let n = Math.max(1, location.line - 2); n <= Math.min(lines.length, location.line + 2); n++) {
          const isError = n === location.line;
          excerpt.push(h('div', {class: ['excerpt-line', isError ? 'is-error' : null], dataset: {line: n}},
            h('span', {class: 'excerpt-number', text: String(n)}),
            h('span', {class: 'excerpt-text', text: lines[n - 1] || ' '})));
          if (isError) {
            excerpt.push(h('div', {class: 'excerpt-caret'},
              h('span', {class: 'excerpt-number', text: ''}),
              h('span', {class: 'excerpt-text', text: `${' '.repeat(Math.max(0, location.column - 1))}^`})));
          }
        }
      }
      const where = location
        ? `Line ${location.line}${location.path ? `, ${location.exact ? '' : 'near '}${location.path}` : `, column ${location.column}`}`
        : 'The cloud refused the flow';
      replace(diagnostic, h('div', {class: 'diagnostic', role: 'alert', dataset: {line: location ? location.line : 0}},
        h('div', {class: 'diagnostic-head'},
          h('span', {class: 'diagnostic-where', text: where}),
          location ? h('button', {class: 'btn btn-ghost btn-small', type: 'button',
                                  onclick: () => goToLine(location.line, location.column)}, 'Go to line') : null),
        h('div', {class: 'diagnostic-message', text: message}),
        excerpt.length ? h('pre', {class: 'excerpt'}, excerpt) : null));
      if (location) goToLine(location.line, location.column);
      diagnostic.scrollIntoView({block: 'nearest'});
    },
    clearError() {
      errorLine = 0;
      replace(diagnostic);
      renderGutter();
    },
  };
  renderGutter();
  return api;
}

// A read-only listing with line numbers (a flow's stored definition).
export function codeView(text) {
  const lines = text.split('\n');
  return h('pre', {class: 'code-view'}, lines.map((line, i) =>
    h('div', {class: 'code-line'},
      h('span', {class: 'code-number', text: String(i + 1)}),
      h('span', {class: 'code-text', text: line || ' '}))));
}

// Pretty-prints JSON text if it parses (the stored definition keeps whatever layout was uploaded).
export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
