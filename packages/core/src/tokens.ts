/**
 * Typed dependency-injection tokens. A token is a symbol branded with the type of
 * what it resolves to, so it goes straight into tsyringe (`@inject(TOKEN)`) and
 * `resolve(c, TOKEN)` is typed without casts. Classes registered with tsyringe put
 * `@inject(TOKEN)` on every constructor parameter: esbuild (and so vitest and tsx)
 * emits no decorator metadata, and an undecorated parameter is silently undefined.
 */
import "reflect-metadata";
import { type DependencyContainer, container as rootContainer } from "tsyringe";

export type Token<T> = symbol & { readonly __tokenType?: T };

export function createToken<T>(id: string): Token<T> {
  return Symbol.for(id) as Token<T>;
}

/** A fresh child container: one per engine, per server, per test. Never the global one. */
export function createContainer(parent: DependencyContainer = rootContainer): DependencyContainer {
  return parent.createChildContainer();
}

export function provide<T>(c: DependencyContainer, token: Token<T>, value: T): void {
  c.register(token, { useValue: value });
}

export function resolve<T>(c: DependencyContainer, token: Token<T>): T {
  return c.resolve<T>(token);
}

export function resolveAll<T>(c: DependencyContainer, token: Token<T>): T[] {
  return c.isRegistered(token, true) ? c.resolveAll<T>(token) : [];
}

export function isProvided<T>(c: DependencyContainer, token: Token<T>): boolean {
  return c.isRegistered(token, true);
}

/** tsyringe's decorators, re-exported so plugins register classes in the same tsyringe instance as the core. */
export { inject, injectable } from "tsyringe";
export type { DependencyContainer };
