/**
 * Returns a function that runs async jobs one at a time, in call order: each starts after the previous
 * one has settled (a failure does not block the queue). Used where interleaving would be wrong: two
 * collectives on one link, or a checkpoint read in the middle of a training step.
 */
export function serializer(): <R>(job: () => Promise<R>) => Promise<R> {
  let chain: Promise<unknown> = Promise.resolve();
  return (job) => {
    const result = chain.then(job);
    chain = result.catch(() => {});
    return result;
  };
}
