import type { Line } from './lineModel';

/**
 * Lines with the same hash: every member but the earliest copy is a duplicate. `mixed` marks a group in
 * which two contents share a hash (a collision): then each member is compared with the earlier ones.
 */
interface Group {
  lines: Line[];
  original: Line;
  mixed: boolean;
  /** Members that are duplicates (`dup` set). */
  dups: number;
}

function isGroup(entry: Line | Group): entry is Group {
  return (entry as Group).lines !== undefined;
}

/**
 * The `duplicate` rule of an open document, kept up to date line by line: which non-blank lines copy an
 * earlier line, and of which one. DatasetDocument adds a line when it is checked and removes it when an edit
 * replaces it; the index keeps each line's `dup` flag and the count of duplicates right, including when an
 * edit removes the original and the next copy becomes the original. Line order comes from `Line.order`,
 * which must be set for the lines given (a line is added once the model has ordered it).
 *
 * Hashes only propose duplicates; contents are compared before a line is called a copy.
 */
export class DuplicateIndex {
  private readonly map = new Map<number, Line | Group>();
  /** Lines that copy an earlier line: the count of `duplicate` findings. */
  duplicates = 0;

  constructor(private readonly same: (a: Line, b: Line) => boolean) {}

  /** Adds a line whose `hash` and `order` are set. */
  add(line: Line): void {
    line.dup = false;
    const entry = this.map.get(line.hash);
    if (entry === undefined) {
      this.map.set(line.hash, line);
      return;
    }
    if (!isGroup(entry)) {
      const group: Group = { lines: [entry, line], original: entry, mixed: false, dups: 0 };
      this.map.set(line.hash, group);
      if (this.same(entry, line)) {
        this.setOriginal(group, line.order < entry.order ? line : entry);
        this.count(group, 1);
      } else {
        group.mixed = true;
        this.recomputeMixed(group);
      }
      return;
    }
    entry.lines.push(line);
    if (entry.mixed || !this.same(entry.original, line)) {
      entry.mixed = true;
      this.recomputeMixed(entry);
      return;
    }
    if (line.order < entry.original.order) {
      entry.original.dup = true;
      entry.original = line;
    } else {
      line.dup = true;
    }
    this.count(entry, 1);
  }

  /** Removes a line that was added (its `hash` unchanged since). */
  remove(line: Line): void {
    const entry = this.map.get(line.hash);
    line.dup = false;
    if (entry === undefined) return;
    if (!isGroup(entry)) {
      if (entry === line) this.map.delete(line.hash);
      return;
    }
    const at = entry.lines.indexOf(line);
    if (at < 0) return;
    const lastLine = entry.lines.pop() as Line;
    if (at < entry.lines.length) entry.lines[at] = lastLine;
    if (entry.mixed) {
      this.recomputeMixed(entry);
    } else {
      if (entry.original === line) {
        let earliest = entry.lines[0];
        for (const other of entry.lines) if (other.order < earliest.order) earliest = other;
        this.setOriginal(entry, earliest);
      }
      this.count(entry, -1);
    }
    if (entry.lines.length === 1) {
      const only = entry.lines[0];
      only.dup = false;
      this.duplicates -= entry.dups;
      this.map.set(line.hash, only);
    }
  }

  /** The line that `line` copies (the earliest line with its content), when it is a duplicate. */
  originalOf(line: Line): Line | undefined {
    if (!line.dup) return undefined;
    const entry = this.map.get(line.hash);
    if (entry === undefined || !isGroup(entry)) return undefined;
    if (!entry.mixed) return entry.original;
    let best: Line | undefined;
    for (const other of entry.lines) {
      if (other.order < line.order && (best === undefined || other.order < best.order) && this.same(other, line)) best = other;
    }
    return best;
  }

  /** Another line with the same content as `line` (to reuse its token counts), if any. */
  sameAs(line: Line): Line | undefined {
    const entry = this.map.get(line.hash);
    if (entry === undefined || !isGroup(entry)) return undefined;
    for (const other of entry.lines) if (other !== line && (!entry.mixed || this.same(other, line))) return other;
    return undefined;
  }

  /** Forgets every line. */
  clear(): void {
    this.map.clear();
    this.duplicates = 0;
  }

  private setOriginal(group: Group, original: Line): void {
    for (const member of group.lines) member.dup = member !== original;
    group.original = original;
  }

  private count(group: Group, delta: number): void {
    group.dups += delta;
    this.duplicates += delta;
  }

  /** After a collision: a member is a duplicate when an earlier member has its content. Groups like this are rare and small. */
  private recomputeMixed(group: Group): void {
    const sorted = [...group.lines].sort((a, b) => a.order - b.order);
    const firsts: Line[] = [];
    let dups = 0;
    for (const line of sorted) {
      const copies = firsts.some((first) => this.same(first, line));
      line.dup = copies;
      if (copies) dups++;
      else firsts.push(line);
    }
    group.original = sorted[0];
    this.duplicates += dups - group.dups;
    group.dups = dups;
  }
}
