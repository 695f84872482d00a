// Stand-ins for env values that are costly to make or that must not be made
// just because the env was copied: `psgi.input` (a Readable, made on first
// use) and `psgix.io` (the socket, taken from the engine on first use).
//
// Why: every env key must be an own enumerable property, present through
// Object.keys and a spread. Accessor properties would do, but adding them
// (Object.defineProperty; in a literal they make the object a slow
// dictionary) costs more than the rest of the env together: measured, two
// accessors took ~15-20% of PSGI throughput on pipelined hello-world. A
// stand-in is a plain data value, cheap to make (a Proxy, its target and
// handler), that a spread copies without touching.
//
// A stand-in has the real object's prototype, so `instanceof` holds before
// anything is made. The real object is made on first *use*: calling a
// method, reading a property that is not a method, setting or defining
// one. Looking at a method (`typeof s.write`) and what generic code reads
// from any value (Promise resolution's `then`, `toJSON`, `constructor`,
// Symbol.toPrimitive, Symbol.toStringTag, util.inspect's hook) make
// nothing; util.inspect shows the (empty) target. Methods are called on
// the real object, so library and Node internals always work on it, never
// on the Proxy.
import { inspect } from 'node:util';

import type { FeersumRequest } from '../request';

const PROBES = new Set<PropertyKey>([
  'then',
  'toJSON',
  'constructor',
  Symbol.toPrimitive,
  Symbol.toStringTag,
  inspect.custom,
]);

/**
 * The Proxy handler of one stand-in, holding its state: the request it
 * belongs to and the function that makes the real object from it (a plain
 * class, not subclasses: constructing derived classes cost measurably more).
 */
export class StandIn<T extends object> implements ProxyHandler<object> {
  /** The real object, once made. */
  private real: T | undefined = undefined;
  private methods: Map<unknown, unknown> | undefined = undefined;
  private readonly req: FeersumRequest;
  private readonly make: (req: FeersumRequest) => T;

  constructor(req: FeersumRequest, make: (req: FeersumRequest) => T) {
    this.req = req;
    this.make = make;
  }

  private use(): T {
    if (this.real === undefined) this.real = this.make(this.req);
    return this.real;
  }

  get(target: object, key: PropertyKey): unknown {
    if (this.real === undefined) {
      // Not made yet: a probe or a method (to be called later, or only
      // looked at, as `typeof s.write`) does not make it; data does.
      const onProto = prototypeValue(target, key);
      if (PROBES.has(key)) return onProto;
      if (typeof onProto === 'function') return this.method(onProto);
    }
    const value = Reflect.get(this.use(), key);
    if (typeof value !== 'function' || key === 'constructor') return value;
    return this.method(value);
  }

  /**
   * A method of the real object, called on it (made first if need be).
   * One function per method, so `s.write === s.write`.
   */
  // eslint-disable-next-line @typescript-eslint/ban-types
  private method(fn: Function): unknown {
    const methods = (this.methods ??= new Map());
    let m = methods.get(fn);
    if (m === undefined) {
      m = (...args: unknown[]) => (fn as (...a: unknown[]) => unknown).apply(this.use(), args);
      methods.set(fn, m);
    }
    return m;
  }

  set(_target: object, key: PropertyKey, value: unknown): boolean {
    return Reflect.set(this.use(), key, value);
  }

  has(target: object, key: PropertyKey): boolean {
    return Reflect.has(this.real ?? target, key);
  }

  deleteProperty(_target: object, key: PropertyKey): boolean {
    return Reflect.deleteProperty(this.use(), key);
  }

  defineProperty(_target: object, key: PropertyKey, desc: PropertyDescriptor): boolean {
    // Kept configurable: a Proxy may not claim a non-configurable property its target lacks.
    return Reflect.defineProperty(this.use(), key, { ...desc, configurable: true });
  }

  ownKeys(target: object): ArrayLike<string | symbol> {
    return Reflect.ownKeys(this.real ?? target);
  }

  getOwnPropertyDescriptor(target: object, key: PropertyKey): PropertyDescriptor | undefined {
    const desc = Reflect.getOwnPropertyDescriptor(this.real ?? target, key);
    if (desc) desc.configurable = true; // as in defineProperty
    return desc;
  }
}

// A value found on the prototype chain of a stand-in's target, without
// running getters (they would run on the empty target): a data property's
// value, or undefined.
function prototypeValue(target: object, key: PropertyKey): unknown {
  for (let o: object | null = Object.getPrototypeOf(target); o !== null; o = Object.getPrototypeOf(o)) {
    const desc = Object.getOwnPropertyDescriptor(o, key);
    if (desc) return desc.value;
  }
  return undefined;
}

/**
 * Makes a stand-in for what make(req) returns: `Target` is an empty
 * constructor whose prototype is the real object's prototype (cheaper
 * than Object.create per request).
 */
export function standIn<T extends object>(Target: new () => object, req: FeersumRequest, make: (req: FeersumRequest) => T): T {
  return new Proxy(new Target(), new StandIn(req, make)) as T;
}

/** An empty-object constructor with `proto` as its instances' prototype. */
export function targetClass(proto: object): new () => object {
  const Target = function (this: object) {} as unknown as { prototype: object } & (new () => object);
  Target.prototype = proto;
  return Target;
}
