// Browser stand-in for Node's "events" module, which xmlbuilder2 (a vtk.js dependency)
// requires when loaded; the viewer never uses its streaming XML builder.
export class EventEmitter {
  constructor() { this.listeners = {}; }
  on(name, listener) { (this.listeners[name] ||= []).push(listener); return this; }
  emit(name, ...args) { (this.listeners[name] || []).forEach((l) => l(...args)); return true; }
}
export default { EventEmitter };
