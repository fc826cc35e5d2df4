/** Whether `work` settled within `ms`; with `rejectOnTimeout`, a timeout throws instead. */
export async function settlesWithin(work: Promise<unknown>, ms: number, rejectOnTimeout = false): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve, reject) => {
    timer = setTimeout(() => (rejectOnTimeout ? reject(new Error(`no answer within ${ms} ms`)) : resolve(false)), ms);
  });
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
