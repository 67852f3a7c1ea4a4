/**
 * The top entries of a V8 CPU profile (`node --cpu-prof`) by self time, idle excluded:
 * `node dist/bench/perf-top.js <file.cpuprofile> [count=25]`. Percentages are of the busy samples.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Profile;
const count = Number(process.argv[3] ?? 25);
const timeOf = new Map<number, number>();
profile.samples.forEach((id, i) => timeOf.set(id, (timeOf.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const self = new Map<string, number>();
let busy = 0;
for (const n of profile.nodes) {
  const f = n.callFrame;
  if (f.functionName === '(idle)') continue;
  const t = timeOf.get(n.id) ?? 0;
  busy += t;
  const where = f.url === '' ? '' : ` ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  const key = `${f.functionName || '(anonymous)'}${where}`;
  self.set(key, (self.get(key) ?? 0) + t);
}
console.log('| self % | function |\n|---|---|');
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, count)) console.log(`| ${((100 * t) / busy).toFixed(1)} | ${key} |`);
