// What each assessment status means to the person waiting for it.
export type Status = "queued" | "scoring" | "scored" | "roadmapping" | "completed" | "failed";

export const STATUS_TEXT: Record<Status, string> = {
  queued: "Queued: waiting for a worker.",
  scoring: "Scoring: the answers are being scored.",
  scored: "Scored: the roadmap is next.",
  roadmapping: "Writing the roadmap.",
  completed: "Completed.",
  failed: "Failed: scoring could not finish. Submit the answers again, or quote the trace id to support.",
};

export function isFinal(status: Status): boolean {
  return status === "completed" || status === "failed";
}

export function degradedText(degraded: boolean): string | null {
  return degraded
    ? "Degraded: the LLM providers were unavailable, so the built-in offline scorer produced this result."
    : null;
}

export const HORIZONS: ReadonlyArray<30 | 60 | 90> = [30, 60, 90];
