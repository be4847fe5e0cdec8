// Paths of the repository the tests read shared files from.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** repoRoot returns the repository root: the nearest ancestor with go.mod. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "go.mod"))) {
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error("repository root (go.mod) not found above the tests");
    }
    dir = parent;
  }
  return dir;
}
