/**
 * The dashboard's page: live partitions, the virtual switch, violations, the audit stream and
 * plots (uPlot), and the labs. Plain DOM (no framework: a few views updated from one event
 * stream); every text that came from the host or a guest is set with textContent, never parsed
 * as HTML. Data comes from /dashboard/api/* with the page's bearer token, which arrives in the
 * URL's fragment (`#token=...`, never sent to a server), is kept in sessionStorage and removed
 * from the address bar.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import type { FlowView, PartitionView, Sample, TelemetryEvent } from '../telemetry.ts';
import { takeEvents } from '../../mgmt/sse.ts';
import type { AuditLine, LabEvent, LabResult } from '../lab.ts';
import type { describeLabs } from '../dashboard.ts';

type LabInfo = ReturnType<typeof describeLabs>[number];
/**
 * The host's attestation report as the management API answers GET /attestation (the registers,
 * the measured events, the partitions, signed over the page's nonce), or the API's refusal
 * (ERR_NOT_IMPLEMENTED in a build without attestation, a permission the token lacks).
 */
type AttestView =
  | { kind: 'pending' }
  | { kind: 'report'; nonce: string; registers: [string, string][]; time: string; events: number; partitions: number; hostKey: string }
  | { kind: 'error'; code: string; message: string };
type RunInfo = { run: string; lab: string; mode: 'defence' | 'defence-off'; events: LabEvent[]; result: Omit<LabResult, 'events'> | null };

const HISTORY = 120;
const MAX_SERIES = 6;
/** A flow stays drawn this long after its last frame, so a short burst can be seen. */
const FLOW_HOLD_MS = 10_000;
const COLORS = ['#2456a6', '#b3261e', '#1d7a3a', '#9a5b00', '#6b3fa0', '#00838f'];

// ---------------------------------------------------------------------------------------------
// DOM helpers

type Child = Node | string | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === 'style' && typeof v === 'string') el.style.cssText = v;
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}
const svgNs = 'http://www.w3.org/2000/svg';
function s(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
const fmt = (n: number, digits = 0) => n.toLocaleString('en', { maximumFractionDigits: digits });
const rate = (n: number) => (n >= 1e6 ? `${fmt(n / 1e6, 1)}M` : n >= 1e4 ? `${fmt(n / 1e3, 1)}k` : fmt(n, n < 10 ? 1 : 0));
const bytes = (n: number) => (n >= 1 << 20 ? `${fmt(n / 1048576, 1)} MiB` : n >= 1024 ? `${fmt(n / 1024, 1)} KiB` : `${fmt(n)} B`);

// ---------------------------------------------------------------------------------------------
// State

const state = {
  token: '' as string,
  runnable: false,
  labs: [] as LabInfo[],
  partitions: new Map<string, PartitionView>(),
  history: [] as { t: number; views: Map<string, PartitionView> }[],
  flows: new Map<string, { flow: FlowView; seen: number }>(),
  audit: [] as AuditLine[],
  violations: [] as { time: number; text: string }[],
  runs: new Map<string, RunInfo>(),
  latestRun: new Map<string, string>(),
  selected: null as string | null,
  connected: false,
  attestation: null as AttestView | null,
};

// ---------------------------------------------------------------------------------------------
// Data: the token, the labs, the event stream

function takeToken(): void {
  const m = /^#token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('wasmvisor-token', m[1]!);
    history.replaceState(null, '', `${location.pathname}#/labs`);
  }
  state.token = sessionStorage.getItem('wasmvisor-token') ?? '';
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, { ...init, headers: { authorization: `Bearer ${state.token}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });
  const body = (await res.json().catch(() => ({}))) as T & { error?: { code: string; message: string } };
  if (!res.ok) throw Object.assign(new Error(body.error?.message ?? `HTTP ${res.status}`), { code: body.error?.code ?? `HTTP_${res.status}`, status: res.status });
  return body;
}

function setConn(ok: boolean, text: string): void {
  state.connected = ok;
  const el = document.getElementById('conn')!;
  el.className = `conn ${ok ? 'ok' : 'down'}`;
  el.textContent = text;
}

/** Server-Sent Events over fetch (EventSource cannot send the Authorization header). */
async function stream(): Promise<void> {
  let delay = 500;
  for (;;) {
    try {
      const res = await fetch('/dashboard/api/events', { headers: { authorization: `Bearer ${state.token}`, accept: 'text/event-stream' } });
      if (res.status === 401 || res.status === 403) {
        setConn(false, res.status === 401 ? 'not signed in' : 'this token may not watch the host');
        sessionStorage.removeItem('wasmvisor-token');
        state.token = '';
        route();
        return;
      }
      if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
      setConn(true, 'live');
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = takeEvents(buffer + value, (name, data) => handle(name, JSON.parse(data) as unknown));
      }
      setConn(false, 'disconnected; reconnecting…');
    } catch {
      setConn(false, 'disconnected; reconnecting…');
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

function handle(name: string, data: unknown): void {
  if (name === 'hello') {
    state.runnable = (data as { runnable: boolean }).runnable;
    return;
  }
  if (name === 'end') {
    setConn(false, `stream ended: ${(data as { message: string }).message}`);
    return;
  }
  const e = data as TelemetryEvent;
  switch (e.type) {
    case 'sample':
      onSample(e.sample);
      break;
    case 'violation':
      state.violations.unshift({ time: e.time, text: `${e.partition} ${e.call} ${e.status}: ${e.reason}` });
      state.violations.length = Math.min(state.violations.length, 100);
      renderFeeds();
      break;
    case 'audit':
      state.audit.unshift(e.record);
      state.audit.length = Math.min(state.audit.length, 200);
      renderFeeds();
      break;
    case 'state':
      break;
    case 'lab-start':
      state.runs.set(e.run, { run: e.run, lab: e.lab, mode: e.mode, events: [], result: null });
      state.latestRun.set(e.lab, e.run);
      renderLabRun(e.lab);
      break;
    case 'lab-event': {
      const r = state.runs.get(e.run);
      if (r) {
        r.events.push(e.event);
        appendEvent(e.lab, e.run, e.event);
      }
      break;
    }
    case 'lab-end': {
      const r = state.runs.get(e.run);
      if (r) r.result = e.result;
      renderLabRun(e.lab);
      break;
    }
  }
}

function onSample(sample: Sample): void {
  state.partitions = new Map(sample.partitions.map((p) => [p.key, p]));
  state.history.push({ t: sample.time / 1000, views: state.partitions });
  if (state.history.length > HISTORY) state.history.shift();
  for (const f of sample.flows) state.flows.set(`${f.segment}|${f.src}|${f.dst}|${f.outcome}`, { flow: f, seen: sample.time });
  for (const [k, v] of state.flows) if (sample.time - v.seen > FLOW_HOLD_MS) state.flows.delete(k);
  if (state.selected === null || !state.partitions.has(state.selected)) {
    const running = sample.partitions.filter((p) => p.state === 'running');
    state.selected = (running.at(-1) ?? sample.partitions.at(-1))?.key ?? null;
  }
  renderLive();
}

// ---------------------------------------------------------------------------------------------
// Views

const views = { current: '' };

function route(): void {
  const main = document.getElementById('main')!;
  const hash = location.hash || '#/labs';
  document.getElementById('nav-dashboard')!.toggleAttribute('aria-current', false);
  document.getElementById('nav-labs')!.toggleAttribute('aria-current', false);
  if (!state.token) {
    views.current = 'signin';
    main.replaceChildren(signin());
    return;
  }
  if (hash.startsWith('#/dashboard')) {
    document.getElementById('nav-dashboard')!.setAttribute('aria-current', 'page');
    views.current = 'dashboard';
    main.replaceChildren(dashboardView());
    charts.reset();
    renderLive();
    renderFeeds();
    if (state.attestation === null) void requestReport();
    else renderAttestation();
  } else {
    document.getElementById('nav-labs')!.setAttribute('aria-current', 'page');
    const id = /^#\/labs\/([a-z0-9-]+)/.exec(hash)?.[1] ?? state.labs[0]?.id ?? '';
    views.current = `lab:${id}`;
    main.replaceChildren(labsView(id));
    renderLabRun(id);
    renderLive();
  }
}

function signin(): HTMLElement {
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', 'aria-describedby': 'token-help' });
  const form = h(
    'form',
    { class: 'panel signin', onsubmit: (e: Event) => {
      e.preventDefault();
      state.token = input.value.trim();
      sessionStorage.setItem('wasmvisor-token', state.token);
      void start();
    } },
    h('h2', {}, 'Sign in'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'token-help', class: 'muted' }, '`wasmvisor lab` prints an address that signs you in. For `wasmvisor serve --dashboard`, paste a token with metrics/read at / (`wasmvisor token create`).'),
    h('button', { class: 'run', type: 'submit' }, 'Sign in'),
  );
  return form;
}

// --- dashboard

function dashboardView(): HTMLElement {
  return h(
    'div',
    { class: 'dash' },
    h(
      'div',
      {},
      h('section', { class: 'panel', 'aria-labelledby': 'parts-h' }, h('h3', { id: 'parts-h' }, 'Partitions'), h('div', { class: 'cards', id: 'cards' })),
      h(
        'div',
        { class: 'charts' },
        h('section', { class: 'panel chart', 'aria-labelledby': 'cpu-h' }, h('h3', { id: 'cpu-h' }, 'CPU share (% of a core)'), h('div', { id: 'chart-cpu' })),
        h('section', { class: 'panel chart', 'aria-labelledby': 'io-h' }, h('h3', { id: 'io-h' }, 'Console I/O against its limit'), h('div', { id: 'chart-io' })),
        h('section', { class: 'panel chart', 'aria-labelledby': 'mem-h' }, h('h3', { id: 'mem-h' }, 'Memory against its cap (pages)'), h('div', { id: 'chart-mem' })),
      ),
    ),
    h(
      'div',
      { class: 'side' },
      h('section', { class: 'panel', 'aria-labelledby': 'sw-h' }, h('h3', { id: 'sw-h' }, 'Virtual switch'), s('svg', { class: 'switch', id: 'switch', role: 'img', 'aria-label': 'frames between partitions' }) as unknown as HTMLElement),
      h('section', { class: 'panel', 'aria-labelledby': 'v-h' }, h('h3', { id: 'v-h' }, 'Violations'), h('ul', { class: 'feed', id: 'violations', 'aria-live': 'polite' })),
      h('section', { class: 'panel', 'aria-labelledby': 'a-h' }, h('h3', { id: 'a-h' }, 'Audit log'), h('ul', { class: 'feed', id: 'audit' })),
      h(
        'section',
        { class: 'panel', 'aria-labelledby': 'att-h' },
        h('div', { class: 'panel-head' }, h('h3', { id: 'att-h' }, 'Attestation registers'), h('button', { class: 'small', type: 'button', id: 'attest-refresh', onclick: () => void requestReport() }, 'New report')),
        h('div', { id: 'attestation', 'data-test': 'attestation', 'aria-live': 'polite' }),
      ),
    ),
  );
}

function card(p: PartitionView, compact = false): HTMLElement {
  const cpu = p.cpu.share;
  const memPct = p.memory.capPages > 0 ? (100 * p.memory.pages) / p.memory.capPages : 0;
  const io = p.io.console;
  const calls = Object.entries(p.hypercalls.byCall).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => `${k} ${rate(v)}`).join(', ');
  const gone = p.state === 'destroyed';
  const cpuText = cpu === null ? (p.state === 'running' ? 'not metered' : '–') : `${fmt(cpu * 100)}%${p.cpu.capPercent !== null ? ` (cap ${p.cpu.capPercent}%)` : ''}`;
  const select = () => {
    state.selected = p.key;
    charts.reset();
    renderLive();
  };
  const head = [h('div', { class: 'name' }, h('span', {}, p.name), h('span', { class: `badge st-${p.state}` }, p.state))];
  if (compact) {
    return h(
      'button',
      { class: `card${gone ? ' gone' : ''}`, type: 'button', 'aria-pressed': String(state.selected === p.key), 'data-key': p.key, 'data-test': 'partition', onclick: select },
      ...head,
      h('div', { class: 'scope' }, `mem ${fmt(p.memory.pages)}/${fmt(p.memory.capPages)} · cpu ${cpuText} · `, h('span', { class: p.violations > 0 ? 'viol' : '' }, `${fmt(p.violations)} violations`)),
    );
  }
  const rows: [string, Node | string][] = [
    ['memory', h('span', {}, `${fmt(p.memory.pages)} / ${fmt(p.memory.capPages)} pages`, h('div', { class: 'bar', title: `${fmt(memPct)}% of its cap` }, h('i', { style: `width:${Math.min(100, memPct)}%` })))],
    ['cpu', h('span', {}, cpuText, cpu !== null ? h('div', { class: 'bar' }, h('i', { style: `width:${Math.min(100, cpu * 100)}%` }), p.cpu.capPercent !== null && p.cpu.capPercent < 100 ? h('b', { style: `left:${p.cpu.capPercent}%` }) : null) : null)],
    ['fuel', p.fuel ? `${rate(p.fuel.consumed)} / ${rate(p.fuel.budget)}` : p.workFuel > 0 ? `${rate(p.workFuel)} used` : 'not metered'],
    ['devices', p.devices.length ? p.devices.join(', ') : 'none'],
    ['I/O', `${rate(io.linesPerSec)} lines/s${io.refusedPerSec > 0 ? `, ${rate(io.refusedPerSec)} refused/s` : ''}${p.io.block ? `, disk ${bytes(p.io.block.bytesPerSec)}/s` : ''}${p.io.net ? `, net ${rate(p.io.net.txFramesPerSec)}↑ ${rate(p.io.net.rxFramesPerSec)}↓ fr/s` : ''}`],
    ['calls', `${rate(p.hypercalls.total)}${calls ? `: ${calls}` : ''}`],
    ['violations', h('span', { class: p.violations > 0 ? 'viol' : '' }, fmt(p.violations))],
  ];
  return h(
    'button',
    { class: `card${gone ? ' gone' : ''}`, type: 'button', 'aria-pressed': String(state.selected === p.key), 'data-key': p.key, 'data-test': 'partition', onclick: select },
    ...head,
    h('div', { class: 'scope' }, `${p.scope}${p.net ? ` · ${p.net.address} on ${p.net.segment}` : ''}`),
    h('dl', {}, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
  );
}

function renderLive(): void {
  const cards = document.getElementById('cards');
  if (cards) {
    // Running partitions first, then the most recent.
    const list = [...state.partitions.values()].reverse().sort((a, b) => Number(b.state === 'running') - Number(a.state === 'running'));
    cards.replaceChildren(...(list.length ? list.map((p) => card(p)) : [h('p', { class: 'muted' }, 'No partitions yet. Run a lab (Labs) or start partitions on this host.')]));
    renderSwitch();
    charts.update();
  }
  const mini = document.getElementById('minicards');
  if (mini) {
    const run = mini.getAttribute('data-run') ?? '';
    const mine = [...state.partitions.values()].filter((p) => run !== '' && (p.scope === run || p.scope.startsWith(`${run}/`)));
    mini.replaceChildren(...mine.map((p) => card(p, true)));
  }
}

function renderFeeds(): void {
  const v = document.getElementById('violations');
  if (v) v.replaceChildren(...(state.violations.length ? state.violations.slice(0, 50).map((x) => h('li', {}, h('span', { class: 'muted' }, new Date(x.time).toLocaleTimeString('en-GB')), ' ', x.text)) : [h('li', { class: 'muted' }, 'none so far')]));
  const a = document.getElementById('audit');
  if (a) {
    a.replaceChildren(
      ...state.audit.slice(0, 60).map((r) =>
        h('li', { title: JSON.stringify(r) }, h('span', { class: 'muted' }, `#${r.seq} ${r.time.slice(11, 19)} `), `${r.actor} `, h('b', {}, r.action), ` ${r.target} `, h('span', { class: r.outcome === 'success' ? 'live' : 'viol' }, r.outcome), r.code ? ` ${r.code}` : '', `: ${r.reason}`),
      ),
    );
  }
}

function renderSwitch(): void {
  const svg = document.getElementById('switch');
  if (!svg) return;
  // Partitions with a card that are alive, or that a recent flow still involves.
  const held = [...state.flows.values()].map((v) => v.flow);
  const involved = new Set(held.flatMap((f) => [f.srcKey, f.dstKey]).filter((k): k is string => k !== null));
  const nets = [...state.partitions.values()].filter((p) => p.net && (p.state !== 'destroyed' || involved.has(p.key)));
  const segments = [...new Set(nets.map((p) => p.net!.segment))].sort();
  const width = svg.clientWidth || 350;
  const height = 140;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const kids: SVGElement[] = [];
  if (segments.length === 0) {
    kids.push(s('text', { x: 8, y: 20, class: 'muted' }, 'No network cards yet (see the Network lab).'));
    svg.replaceChildren(...kids);
    return;
  }
  const laneW = width / segments.length;
  const pos = new Map<string, { x: number; y: number }>();
  // Each partition sits near its segment's bus with its label to the right, inside its lane
  // (shortened to fit: the full name and address are in the label's tooltip).
  const fits = Math.max(4, Math.floor((laneW - 52) / 6.3));
  segments.forEach((seg, i) => {
    kids.push(s('rect', { x: i * laneW + 3, y: 2, width: laneW - 6, height: height - 4, rx: 6, class: 'seg' }));
    kids.push(s('text', { x: i * laneW + 10, y: 16 }, `segment ${seg}`.slice(0, fits + 6)));
    const members = nets.filter((p) => p.net!.segment === seg);
    members.forEach((p, j) => {
      const y = 40 + (j * (height - 56)) / Math.max(1, members.length - 1);
      pos.set(p.key, { x: i * laneW + 36, y: members.length === 1 ? height / 2 : y });
    });
  });
  // Each segment's bus: NICs deliver to each other straight through it (direct delivery is not
  // seen frame by frame, only in each NIC's counters), so a NIC that sends or receives shows a
  // moving link to its bus; frames the root routes (and every dropped one) are drawn pair by pair.
  segments.forEach((_, i) => kids.push(s('line', { x1: i * laneW + 14, y1: 24, x2: i * laneW + 14, y2: height - 8, class: 'bus' })));
  for (const p of nets) {
    const at = pos.get(p.key)!;
    const n = p.io.net!;
    const busy = p.state === 'running' && n.txFramesPerSec + n.rxFramesPerSec > 0;
    const link = s('line', { x1: segments.indexOf(p.net!.segment) * laneW + 14, y1: at.y, x2: at.x - 6, y2: at.y, class: busy ? 'ok' : 'idle' });
    link.append(s('title', {}, `${p.name}: sends ${rate(n.txFramesPerSec)} frames/s, receives ${rate(n.rxFramesPerSec)} frames/s`));
    kids.push(link);
  }
  for (const f of held) {
    const a = f.srcKey ? pos.get(f.srcKey) : undefined;
    if (!a) continue;
    const b = f.dstKey ? pos.get(f.dstKey) : undefined;
    // A frame to no partition ends just above its sender, marked where it was dropped.
    const target = b ?? { x: a.x + 24, y: a.y - 14 };
    const ok = f.outcome === 'delivered';
    // An arc above the two ends, so it crosses no label; a drop is marked at its middle.
    const cx = (a.x + target.x) / 2;
    const cy = Math.max(4, Math.min(a.y, target.y) - (b ? 34 : 6));
    const line = s('path', { d: `M${a.x} ${a.y} Q${cx} ${cy} ${target.x} ${target.y}`, class: ok ? 'ok' : 'drop' });
    const title = s('title', {}, `${f.src} → ${f.dst}: ${fmt(f.frames)} frame(s), ${ok ? 'delivered' : `dropped (${f.outcome})`}`);
    line.append(title);
    kids.push(line);
    const mark = b ? { x: (a.x + 2 * cx + target.x) / 4, y: (a.y + 2 * cy + target.y) / 4 } : target;
    if (!ok) kids.push(s('text', { x: mark.x - 4, y: mark.y + 4, class: 'x' }, '✕'));
  }
  for (const p of nets) {
    const at = pos.get(p.key)!;
    kids.push(s('circle', { cx: at.x, cy: at.y, r: 6, class: p.state === 'destroyed' ? 'node gone' : 'node' }));
    const full = `${p.name} ${p.net!.address}`;
    const label = s('text', { x: at.x + 10, y: at.y + 4 }, full.length <= fits ? full : p.name.length <= fits ? p.name : `${p.name.slice(0, fits - 1)}…`);
    label.append(s('title', {}, full));
    kids.push(label);
  }
  svg.replaceChildren(...kids);
}

// --- attestation

/** Asks the host for a report over a fresh nonce (each request is on the host's audit record, so only on demand and once per page). */
async function requestReport(): Promise<void> {
  const nonce = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
  state.attestation = { kind: 'pending' };
  renderAttestation();
  try {
    const r = await api<Record<string, unknown>>(`/attestation?nonce=${nonce}`);
    const regs = r['registers'];
    const registers = regs !== null && typeof regs === 'object' ? Object.entries(regs as Record<string, unknown>).map(([k, v]) => [k, String(v)] as [string, string]) : [];
    if (registers.length === 0) throw Object.assign(new Error('the answer carries no registers'), { code: 'ERR_INVALID_ARGUMENT' });
    if (r['nonce'] !== nonce) throw Object.assign(new Error(`the report is bound to nonce ${String(r['nonce']).slice(0, 32)}, not the one asked for`), { code: 'ERR_INTEGRITY' });
    state.attestation = {
      kind: 'report',
      nonce,
      registers,
      time: String(r['time'] ?? ''),
      events: Array.isArray(r['events']) ? r['events'].length : 0,
      partitions: Array.isArray(r['partitions']) ? r['partitions'].length : 0,
      hostKey: String(r['hostKey'] ?? ''),
    };
  } catch (error) {
    state.attestation = { kind: 'error', code: (error as { code?: string }).code ?? 'ERR_INTERNAL', message: (error as Error).message };
  }
  renderAttestation();
}

function renderAttestation(): void {
  const el = document.getElementById('attestation');
  if (!el) return;
  const a = state.attestation;
  if (a === null || a.kind === 'pending') {
    el.replaceChildren(h('p', { class: 'muted' }, 'Asking the host for a report…'));
    return;
  }
  if (a.kind === 'error') {
    const why = a.code === 'ERR_ACCESS_DENIED' ? 'This token lacks attestation/read at /.' : '';
    el.replaceChildren(h('p', { 'data-test': 'attestation-error' }, h('code', {}, a.code), ` ${a.message}`), ...(why ? [h('p', { class: 'muted' }, why)] : []));
    return;
  }
  el.replaceChildren(
    h('dl', { class: 'registers', 'data-test': 'registers' }, ...a.registers.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v)])),
    h('p', { class: 'muted small', title: `nonce ${a.nonce}, host key ${a.hostKey}` }, `signed ${a.time.slice(11, 19)} over this page's nonce · ${fmt(a.events)} events · ${fmt(a.partitions)} partitions`),
  );
}

// --- charts (uPlot)

const charts = (() => {
  let cpu: uPlot | null = null;
  let io: uPlot | null = null;
  let mem: uPlot | null = null;
  let cpuKeys: string | null = null;
  let selected: string | null = null;
  const opts = (el: HTMLElement, series: uPlot.Series[], yRange?: [number, number]): uPlot.Options => ({
    width: Math.max(200, el.clientWidth),
    height: 150,
    legend: { show: true, live: false },
    cursor: { show: true },
    scales: { x: { time: true }, ...(yRange ? { y: { range: yRange } } : {}) },
    axes: [{ size: 30, font: '11px system-ui' }, { size: 44, font: '11px system-ui' }],
    series: [{}, ...series],
  });
  function reset(): void {
    for (const c of [cpu, io, mem]) c?.destroy();
    cpu = io = mem = null;
    cpuKeys = null;
    selected = null;
  }
  function update(): void {
    const hist = state.history;
    const xs = hist.map((x) => x.t);
    const cpuEl = document.getElementById('chart-cpu');
    if (!cpuEl) return;
    const keys = [...state.partitions.values()].filter((p) => p.cpu.share !== null || hist.some((x) => x.views.get(p.key)?.cpu.share != null)).map((p) => p.key).slice(-MAX_SERIES);
    if (keys.join('|') !== cpuKeys) {
      cpu?.destroy();
      cpuKeys = keys.join('|');
      cpu = new uPlot(opts(cpuEl, keys.map((k, i) => ({ label: state.partitions.get(k)?.name ?? k, stroke: COLORS[i % COLORS.length]!, width: 2 })), [0, 100]), [xs, ...keys.map(() => [])], cpuEl);
    }
    cpu?.setData([xs, ...keys.map((k) => hist.map((x) => { const v = x.views.get(k)?.cpu.share; return v == null ? null : v * 100; }))]);
    const sel = state.selected ?? '';
    const ioEl = document.getElementById('chart-io')!;
    const memEl = document.getElementById('chart-mem')!;
    if (sel !== selected) {
      io?.destroy();
      mem?.destroy();
      selected = sel;
      const name = state.partitions.get(sel)?.name ?? '–';
      io = new uPlot(opts(ioEl, [
        { label: `${name} accepted/s`, stroke: COLORS[0]!, width: 2 },
        { label: 'refused/s', stroke: COLORS[1]!, width: 2 },
        { label: 'limit', stroke: '#888', dash: [6, 4], width: 1.5 },
      ]), [xs, [], [], []], ioEl);
      mem = new uPlot(opts(memEl, [
        { label: `${name} pages`, stroke: COLORS[2]!, width: 2 },
        { label: 'cap', stroke: '#888', dash: [6, 4], width: 1.5 },
      ]), [xs, [], []], memEl);
    }
    const pick = <T,>(f: (p: PartitionView) => T) => hist.map((x) => { const p = x.views.get(sel); return p ? f(p) : null; });
    io?.setData([xs, pick((p) => p.io.console.linesPerSec), pick((p) => p.io.console.refusedPerSec), pick((p) => p.io.console.limitPerSec)]);
    mem?.setData([xs, pick((p) => p.memory.pages), pick((p) => p.memory.capPages)]);
  }
  return { reset, update };
})();

// --- labs

function labsView(id: string): HTMLElement {
  const lab = state.labs.find((l) => l.id === id);
  const list = h(
    'nav',
    { class: 'panel', 'aria-label': 'Labs' },
    h('h3', {}, 'Labs'),
    h('ol', { class: 'lablist' }, ...state.labs.map((l) => h('li', {}, h('a', { href: `#/labs/${l.id}`, ...(l.id === id ? { 'aria-current': 'page' } : {}) }, h('span', { class: 'n' }, String(l.order)), h('span', { class: 't' }, l.title), h('span', { class: `badge ${l.live ? 'live' : 'coming'}` }, l.live ? 'live' : 'coming'))))),
  );
  if (!lab) return h('div', { class: 'labs' }, list, h('section', { class: 'panel' }, h('p', {}, 'No such lab.')));
  const e = lab.expect;
  const runBtn = h('button', { class: 'run', type: 'button', id: 'run-defence', 'data-test': 'run', onclick: () => void startRun(lab, 'defence') }, 'Run the attack');
  const offBtn = lab.defenceOff ? h('button', { class: 'run off', type: 'button', id: 'run-off', 'data-test': 'run-off', onclick: () => void startRun(lab, 'defence-off') }, `What if the defence were off?`) : null;
  if (!lab.live || !state.runnable) {
    runBtn.disabled = true;
    if (offBtn) offBtn.disabled = true;
  }
  const explain = h(
    'div',
    { class: 'explain' },
    h('h2', {}, `${lab.order}. ${lab.title}`),
    h('div', { class: 'meta' }, `${lab.goal} · about ${lab.minutes} minutes · guests: ${lab.guests.join(', ')}`),
    ...lab.concept.map((p) => h('p', {}, p)),
    lab.defenceOff ? h('p', { class: 'muted' }, h('b', {}, `Defence off: ${lab.defenceOff.title}. `), lab.defenceOff.text) : h('p', { class: 'muted' }, 'No "defence off" comparison: it cannot be shown without harming the host.'),
  );
  const runside = h(
    'div',
    { class: 'runside' },
    lab.live
      ? h('dl', { class: 'expect' }, h('dt', {}, 'error code'), h('dd', {}, h('code', {}, e.code)), e.violation ? h('dt', {}, 'violation') : null, e.violation ? h('dd', {}, h('code', {}, `${e.violation.call ?? ''} ${e.violation.status}`.trim())) : null, h('dt', {}, 'audit record'), h('dd', {}, h('code', {}, `${e.audit.action} (${e.audit.outcome}${e.audit.code ? `, ${e.audit.code}` : ''})`)))
      : h('div', { class: 'comingbox', 'data-test': 'coming' }, `Coming: this lab needs ${lab.feature.what} (${lab.feature.where}), which this build does not have yet. It turns live when that code lands.`),
    lab.live && !state.runnable ? h('p', { class: 'muted' }, 'This dashboard watches a host; run the labs with `wasmvisor lab`.') : null,
    h('div', { class: 'actions' }, runBtn, offBtn),
    h('section', { 'aria-labelledby': 'res-h' }, h('h3', { id: 'res-h', class: 'sr' }, 'Result'), h('div', { id: 'result' }), h('div', { class: 'minicards', id: 'minicards' })),
    h('section', { 'aria-labelledby': 'tr-h' }, h('h3', { id: 'tr-h' }, 'What happens'), h('ol', { class: 'transcript', id: 'transcript', 'aria-live': 'polite' })),
  );
  const page = h('article', { class: 'panel lab', 'data-lab': lab.id }, explain, runside);
  return h('div', { class: 'labs' }, list, page);
}

async function startRun(lab: LabInfo, mode: 'defence' | 'defence-off'): Promise<void> {
  for (const id of ['run-defence', 'run-off']) (document.getElementById(id) as HTMLButtonElement | null)?.setAttribute('disabled', '');
  try {
    const { run } = await api<{ run: string }>(`/dashboard/api/labs/${lab.id}/run`, { method: 'POST', body: JSON.stringify({ mode }) });
    if (!state.runs.has(run)) {
      state.runs.set(run, { run, lab: lab.id, mode, events: [], result: null });
      state.latestRun.set(lab.id, run);
    }
    renderLabRun(lab.id);
    void poll(lab.id, run);
  } catch (error) {
    const r = document.getElementById('result');
    if (r) r.replaceChildren(h('div', { class: 'result failed' }, h('div', { class: 'verdict' }, 'Could not start the lab'), h('p', {}, (error as Error).message)));
    for (const id of ['run-defence', 'run-off']) document.getElementById(id)?.removeAttribute('disabled');
  }
}

/**
 * The result also by asking for it, every two seconds until it is there: the event stream may
 * reconnect in the middle of a run, and the result must show all the same.
 */
async function poll(labId: string, run: string): Promise<void> {
  for (;;) {
    await new Promise((r) => setTimeout(r, 2000));
    const r = state.runs.get(run);
    if (r === undefined || r.result !== null) return;
    try {
      const got = await api<LabResult | { running: true }>(`/dashboard/api/runs/${run}`);
      if ('verdict' in got) {
        const { events, ...result } = got;
        r.events = events;
        r.result = result;
        renderLabRun(labId);
        return;
      }
    } catch {
      // The next round asks again; the stream may deliver it first.
    }
  }
}

function eventItem(e: LabEvent): HTMLElement {
  switch (e.kind) {
    case 'say':
      return h('li', { class: 'say' }, e.text);
    case 'step':
      return h('li', { class: 'step' }, e.text);
    case 'console':
      return h('li', { class: 'console' }, `[${e.partition}${e.stream === 'stderr' ? ' stderr' : ''}] ${e.line}`);
    case 'evidence':
      return h('li', { class: 'evidence' }, h('b', {}, `${e.label}: `), e.text);
    case 'code':
      return h('li', { class: 'code' }, h('code', {}, e.code), ` ${e.message} (${e.source})`);
    case 'violation':
      return h('li', { class: 'violation' }, 'violation: ', h('code', {}, `${e.call} ${e.status}`), ` ${e.partition}: ${e.reason}`);
    case 'audit':
      return h('li', { class: 'audit', title: JSON.stringify(e.record) }, `audit #${e.record.seq} ${e.record.action} ${e.record.target} ${e.record.outcome}${e.record.code ? ` ${e.record.code}` : ''}: ${e.record.reason}`);
    case 'problem':
      return h('li', { class: 'problem' }, `problem: ${e.text}`);
  }
}

function appendEvent(labId: string, run: string, e: LabEvent): void {
  if (views.current !== `lab:${labId}` || state.latestRun.get(labId) !== run) return;
  const t = document.getElementById('transcript');
  if (!t) return;
  t.append(eventItem(e));
  t.scrollTop = t.scrollHeight;
}

function renderLabRun(labId: string): void {
  if (views.current !== `lab:${labId}`) return;
  const runId = state.latestRun.get(labId);
  const r = runId ? state.runs.get(runId) : undefined;
  const t = document.getElementById('transcript');
  const out = document.getElementById('result');
  const mini = document.getElementById('minicards');
  if (!t || !out) return;
  const lab = state.labs.find((l) => l.id === labId);
  if (!r) {
    t.replaceChildren(h('li', { class: 'muted' }, 'Press a button to run the lab; each step appears here as it happens.'));
    out.replaceChildren();
    return;
  }
  mini?.setAttribute('data-run', r.run);
  t.replaceChildren(h('li', { class: 'step' }, r.mode === 'defence' ? 'The attack, with the defence on' : `The defence off: ${lab?.defenceOff?.title ?? ''}`), ...r.events.map(eventItem));
  t.scrollTop = t.scrollHeight;
  const running = r.result === null;
  for (const id of ['run-defence', 'run-off']) {
    const b = document.getElementById(id) as HTMLButtonElement | null;
    if (b) b.disabled = running || !state.runnable || !lab?.live;
  }
  if (running) {
    out.replaceChildren(h('div', { class: 'result', 'data-test': 'running' }, h('div', { class: 'verdict' }, 'Running…')));
    return;
  }
  const res = r.result!;
  const verdict = res.verdict === 'held' ? 'Held: the defence stopped the attack' : res.verdict === 'breached' ? 'Without the defence, the attack succeeded' : 'Failed';
  out.replaceChildren(
    h(
      'div',
      { class: `result ${res.verdict}`, 'data-test': 'result', 'data-verdict': res.verdict, role: 'status' },
      h('div', { class: 'verdict' }, verdict, h('span', { class: 'muted' }, ` (${fmt(res.durationMs / 1000, 1)} s)`)),
      h(
        'dl',
        {},
        ...res.breaches.flatMap((b) => [h('dt', {}, 'the attack got'), h('dd', { 'data-test': 'breach' }, b)]),
        res.code && res.mode === 'defence' ? h('dt', {}, 'error code') : null,
        res.code && res.mode === 'defence' ? h('dd', { 'data-test': 'code' }, h('code', {}, res.code.code), ` ${res.code.message}`) : null,
        res.violation ? h('dt', {}, 'violation') : null,
        res.violation ? h('dd', { 'data-test': 'violation' }, h('code', {}, `${res.violation.call} ${res.violation.status}`), ` ${res.violation.partition}: ${res.violation.reason}`) : null,
        res.audit ? h('dt', {}, 'audit') : null,
        res.audit ? h('dd', { 'data-test': 'audit', class: 'mono' }, JSON.stringify(res.audit)) : null,
        ...res.problems.flatMap((p) => [h('dt', {}, 'missing'), h('dd', { class: 'viol' }, p)]),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  takeToken();
  if (!state.token) {
    setConn(false, 'not signed in');
    route();
    return;
  }
  try {
    const r = await api<{ runnable: boolean; labs: LabInfo[] }>('/dashboard/api/labs');
    state.runnable = r.runnable;
    state.labs = r.labs;
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === 401 || status === 403) {
      sessionStorage.removeItem('wasmvisor-token');
      state.token = '';
    }
    setConn(false, (error as Error).message);
    route();
    return;
  }
  route();
  void stream();
}

window.addEventListener('hashchange', route);
window.addEventListener('resize', () => {
  charts.reset();
  renderLive();
});
void start();
