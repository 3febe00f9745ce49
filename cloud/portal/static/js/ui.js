// Building blocks the pages share: page headers, tables, empty states, error banners, form
// fields with inline errors, a confirmation dialog and toasts.
import {h, icon, replace} from './dom.js';

export function pageHeader({title, subtitle, actions = [], back}) {
  return h('header', {class: 'page-header'},
    h('div', {class: 'page-title'},
      back ? h('a', {class: 'back-link', href: back.href}, icon('back'), back.label) : null,
      h('h1', {text: title}),
      subtitle ? h('p', {class: 'page-subtitle'}, subtitle) : null),
    h('div', {class: 'page-actions'}, actions));
}

// A button. kind: 'primary' | 'secondary' | 'danger' | 'ghost'.
export function button(label, {kind = 'secondary', iconName, onClick, type = 'button', ...rest} = {}) {
  return h('button', {class: ['btn', `btn-${kind}`], type, onclick: onClick, ...rest},
           iconName ? icon(iconName) : null, label);
}

export function linkButton(label, href, {kind = 'secondary', iconName, ...rest} = {}) {
  return h('a', {class: ['btn', `btn-${kind}`], href, ...rest}, iconName ? icon(iconName) : null, label);
}

// A table. columns: [{label, cell: (row) => node|string, class}]; rows: objects.
export function table({columns, rows, rowProps, empty, caption}) {
  if (!rows.length && empty) return empty;
  return h('div', {class: 'table-wrap'},
    h('table', {class: 'data-table'},
      caption ? h('caption', {class: 'visually-hidden', text: caption}) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col', class: c.class, text: c.label})))),
      h('tbody', {}, rows.map((row) =>
        h('tr', rowProps ? rowProps(row) : {}, columns.map((c) => h('td', {class: c.class}, c.cell(row))))))));
}

export function emptyState({iconName, title, body, action}) {
  return h('div', {class: 'empty-state'},
    iconName ? icon(iconName, 'empty-icon') : null,
    h('h2', {text: title}),
    body ? h('p', {}, body) : null,
    action || null);
}

export function loading(label = 'Loading…') {
  return h('div', {class: 'loading', role: 'status'}, h('span', {class: 'spinner'}), label);
}

// The banner that shows a server (or network) error: code and message, exactly as sent.
export function errorBanner(error, {title} = {}) {
  if (!error) return null;
  const code = error.code || 'ERROR';
  return h('div', {class: 'alert alert-error', role: 'alert', dataset: {code}},
    h('div', {class: 'alert-title'}, title || 'The cloud refused the request',
      h('code', {class: 'alert-code', text: code})),
    h('div', {class: 'alert-body', text: error.message || String(error)}));
}

// An element whose content is an error banner or nothing (forms keep one).
export function errorSlot() {
  const el = h('div', {class: 'error-slot', 'aria-live': 'polite'});
  return {
    el,
    show(error, options) {
      replace(el, errorBanner(error, options));
      el.scrollIntoView({block: 'nearest'});
    },
    clear() {
      replace(el);
    },
  };
}

let fieldCounter = 0;

// A labelled form field with help text and an inline error. `control` is the input element.
export function field({label, control, help, required}) {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  const helpEl = help ? h('p', {class: 'field-help', id: `${id}-help`}, help) : null;
  const errorEl = h('p', {class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true});
  const describedBy = [helpEl ? helpEl.id : null, errorEl.id].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', describedBy);
  const el = h('div', {class: 'field'},
    h('label', {for: id}, label, required ? h('span', {class: 'required', 'aria-hidden': 'true', text: ' *'}) : null),
    control, helpEl, errorEl);
  return {
    el,
    control,
    setError(message) {
      errorEl.textContent = message || '';
      errorEl.hidden = !message;
      control.classList.toggle('invalid', Boolean(message));
      if (message) control.setAttribute('aria-invalid', 'true');
      else control.removeAttribute('aria-invalid');
    },
  };
}

// Attributes for an input holding a secret that is not the user's own login (the API token, a
// desktop account's password): no autofill, and the hints password managers honour to leave the
// field alone (LastPass, 1Password, Bitwarden, Dashlane). Browsers may still offer to save a
// password typed into a type=password field; these make it less likely, not impossible.
export const NOT_A_LOGIN = Object.freeze({
  'autocomplete': 'off',
  'data-lpignore': 'true',
  'data-1p-ignore': 'true',
  'data-bwignore': 'true',
  'data-form-type': 'other',
});

export function textInput(props = {}) {
  return h('input', {type: 'text', class: 'input', autocomplete: 'off', spellcheck: 'false', ...props});
}

export function select(options, props = {}) {
  return h('select', {class: 'input', ...props},
    options.map((o) => o.group
      ? h('optgroup', {label: o.group}, o.options.map((x) => h('option', {value: x.value, disabled: x.disabled, text: x.label})))
      : h('option', {value: o.value, disabled: o.disabled, text: o.label})));
}

// A card: a titled panel.
export function card(title, ...children) {
  return h('section', {class: 'card'},
    title ? h('h2', {class: 'card-title'}, title) : null, children);
}

// Definition list of label/value pairs.
export function details(pairs) {
  return h('dl', {class: 'details'}, pairs.filter(Boolean).map(([label, value]) =>
    h('div', {class: 'details-row'}, h('dt', {text: label}), h('dd', {}, value))));
}

// Asks before a destructive action; resolves true when confirmed.
export function confirmDialog({title, body, confirmLabel = 'Delete', kind = 'danger'}) {
  return new Promise((resolve) => {
    const dialog = h('dialog', {class: 'dialog', 'aria-labelledby': 'dialog-title'});
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      h('h2', {id: 'dialog-title', text: title}),
      h('div', {class: 'dialog-body'}, body),
      h('div', {class: 'dialog-actions'},
        button('Cancel', {onClick: () => finish(false)}),
        button(confirmLabel, {kind, onClick: () => finish(true)})));
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A short message at the bottom right that goes away by itself.
export function toast(message, tone = 'ok') {
  let region = document.getElementById('toasts');
  if (!region) {
    region = h('div', {id: 'toasts', class: 'toasts', 'aria-live': 'polite'});
    document.body.append(region);
  }
  const el = h('div', {class: ['toast', `toast-${tone}`], role: 'status', text: message});
  region.append(el);
  setTimeout(() => el.classList.add('toast-out'), 3500);
  setTimeout(() => el.remove(), 4000);
}

// Disables a form's controls while `work` runs; the submit button shows `busyLabel`.
export async function whileBusy(form, submitButton, busyLabel, work) {
  const controls = [...form.querySelectorAll('input, select, textarea, button')];
  const previous = controls.map((c) => c.disabled);
  const label = submitButton.lastChild.textContent;
  controls.forEach((c) => { c.disabled = true; });
  submitButton.lastChild.textContent = busyLabel;
  submitButton.classList.add('is-busy');
  try {
    return await work();
  } finally {
    controls.forEach((c, i) => { c.disabled = previous[i]; });
    submitButton.lastChild.textContent = label;
    submitButton.classList.remove('is-busy');
  }
}
