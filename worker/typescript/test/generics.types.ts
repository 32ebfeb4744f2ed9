// generics.types.ts — a type-level test of the SDK's generics: compiled by tsc with the rest of
// the package (npm run build, so `npm test` and ctest sdk.typescript), never run.
// Owns: what a typed call or node must accept and what must be a compile error. Every
// `// @ts-expect-error` line below MUST fail to type-check: tsc fails the build with "Unused
// '@ts-expect-error' directive" when one compiles, so a loosened type breaks the test.
// Must never: be executed (the functions are only declared).
import { type Call, type Context, Client, Worker } from '../src';

interface HelloIn {
  name: string;
}
interface HelloOut {
  greeting: string;
}

export async function typedClientCall(client: Client): Promise<string> {
  const out = await client.call<HelloIn, HelloOut>('hello', { name: 'Ada' });
  const greeting: string = out.greeting;
  // @ts-expect-error a field the outputs do not have
  void out.greting;
  // @ts-expect-error an output of the wrong type
  const wrong: number = out.greeting;
  void wrong;
  // @ts-expect-error a misspelt input field
  await client.call<HelloIn, HelloOut>('hello', { nam: 'Ada' });
  // @ts-expect-error an input of the wrong type
  await client.call<HelloIn, HelloOut>('hello', { name: 42 });
  // @ts-expect-error a required input missing
  await client.call<HelloIn, HelloOut>('hello', {});
  // Untyped calls keep working: Values in, Values out.
  const any = await client.call('hello', { name: 'Ada', extra: [1, 2n, null] });
  void any;
  return greeting;
}

export async function listingsAreNumbers(client: Client): Promise<number> {
  const status = await client.status();
  const [worker] = await client.workers();
  const [node] = await client.nodes();
  // @ts-expect-error counters are numbers
  const big: bigint = status.submitted;
  void big;
  return status.submitted + status.uptimeMs + (worker?.attachedMs ?? 0) + (node?.spec?.defaultTimeoutMs ?? 0);
}

export function typedSubmit(client: Client): Call<HelloOut> {
  const call = client.submit<HelloIn, HelloOut>('hello', { name: 'Ada' });
  const id: number = call.requestId; // a number, not a bigint
  void id;
  // @ts-expect-error requestId is a number
  const big: bigint = call.requestId;
  void big;
  return call;
}

export function typedNode(worker: Worker): void {
  worker.node<HelloIn, HelloOut>({ name: 'hello', inputs: { name: 'string' } }, async (ctx) => {
    const name: string = ctx.inputs.name;
    const id: number = ctx.requestId;
    void id;
    // @ts-expect-error a field the inputs do not have
    void ctx.inputs.nam;
    return { greeting: `Hello ${name}` };
  });
  // @ts-expect-error an output of the wrong type
  worker.node<HelloIn, HelloOut>({ name: 'hello2' }, async () => ({ greeting: 42 }));
  // @ts-expect-error a required output missing
  worker.node<HelloIn, HelloOut>({ name: 'hello3' }, () => ({ greetings: 'x' }));
  // Parameters have their own shape.
  worker.node<HelloIn, HelloOut, { loud: boolean }>({ name: 'hello4' }, (ctx: Context<HelloIn, { loud: boolean }>) => {
    // @ts-expect-error a parameter of the wrong type
    const loud: string = ctx.parameters.loud;
    return { greeting: loud };
  });
  // Untyped nodes keep working: inputs are Record<string, any>, any map is an output.
  worker.node({ name: 'free' }, (ctx) => ({ anything: ctx.inputs.whatever ?? null }));
  const timeouts: number[] = worker.specs.map((spec) => spec.defaultTimeoutMs);
  void timeouts;
  const inFlight: number[] = worker.inFlight;
  void inFlight;
}

interface CountIn {
  n: number;
}
interface CountItem {
  i: number;
}
interface CountOut {
  left: number;
}

export function streamingNodes(worker: Worker): void {
  // An async generator handler: yields items, returns the outputs.
  worker.node<CountIn, CountOut>({ name: 'countdown', inputs: { n: 'int' } }, async function* (ctx) {
    for (let i = ctx.inputs.n; i > 0; i--) yield { i };
    return { left: 0 };
  });
  // A sync generator, and ctx.emit from a plain handler.
  worker.node<CountIn, CountOut>({ name: 'countdown.sync' }, function* (ctx) {
    yield { i: ctx.inputs.n };
    return { left: 0 };
  });
  worker.node<CountIn, CountOut>({ name: 'countdown.emit' }, async (ctx) => {
    const sent: boolean = await ctx.emit({ i: ctx.inputs.n });
    void sent;
    const streaming: boolean = ctx.streaming;
    void streaming;
    return { left: 0 };
  });
  // @ts-expect-error a generator must return the node's outputs
  worker.node<CountIn, CountOut>({ name: 'countdown.bad' }, async function* () {
    yield { i: 1 };
    return { lef: 0 };
  });
}

export async function typedStream(client: Client): Promise<number> {
  const s = client.stream<CountIn, CountItem, CountOut>('countdown', { n: 3 }, { windowItems: 8, windowBytes: 1 << 20 });
  let sum = 0;
  for await (const item of s) sum += item.i;
  const out: CountOut = await s.result;
  // @ts-expect-error an item field the items do not have
  for await (const item of s) void item.j;
  // @ts-expect-error a misspelt input field
  client.stream<CountIn, CountItem, CountOut>('countdown', { m: 3 });
  // @ts-expect-error streaming calls are not durable
  client.stream('countdown', { n: 3 }, { durable: true });
  return sum + out.left + s.requestId + s.itemsReceived;
}
