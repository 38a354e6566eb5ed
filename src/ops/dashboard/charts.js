// Small SVG line charts of what the dashboard has polled since it was opened
// (a sliding window of samples); longer history belongs to Prometheus/Grafana.

const COLORS = ['#2f6fde', '#d9480f', '#2b8a3e', '#862e9c', '#e67700', '#0b7285'];

export const colorOf = (i) => COLORS[i % COLORS.length];

/**
 * Draws `series` ({name, points: [{t, v}]}) into `svg`, sharing one time axis
 * and a value axis from 0 to the largest value seen.
 */
export function lineChart(svg, series, unit) {
  const width = 600;
  const height = 140;
  const pad = { left: 40, right: 8, top: 8, bottom: 16 };
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return;
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t), t0 + 1);
  const max = Math.max(1, ...all.map((p) => p.v));
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  const ns = 'http://www.w3.org/2000/svg';
  const label = (text, lx, ly) => {
    const el = document.createElementNS(ns, 'text');
    el.setAttribute('x', String(lx));
    el.setAttribute('y', String(ly));
    el.textContent = text;
    svg.append(el);
  };
  label(`${formatNumber(max)} ${unit}`, 2, pad.top + 8);
  label('0', 2, height - pad.bottom);
  label(`${Math.round((t1 - t0) / 1000)} s`, width - 40, height - 2);
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', colorOf(i));
    line.setAttribute('stroke-width', '2');
    line.setAttribute('points', s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '));
    svg.append(line);
  });
}

export function legend(series) {
  const div = document.createElement('div');
  div.className = 'legend';
  series.forEach((s, i) => {
    const span = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = colorOf(i);
    span.append(swatch, s.name);
    div.append(span);
  });
  return div;
}

function formatNumber(v) {
  return v >= 10 ? String(Math.round(v)) : v.toFixed(1);
}
