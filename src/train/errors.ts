// Errors of training itself (no tfjs here: the coordinator on the page throws them too).

/** Training stopped before the update, so the parameters are still those of the last good step. */
export class TrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingError';
  }
}
