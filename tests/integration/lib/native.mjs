// Small helpers shared by the tests that speak the native protocol (/v1/{app}).

// Resolves to what promise resolves to, or null after ms (the timer does not outlive the race).
export function within(promise, ms) {
    let timer;
    const timeout = new Promise((r) => {
        timer = setTimeout(() => r(null), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A frame predicate: a message on room that also satisfies pred.
export function isMessage(room, pred = () => true) {
    return (f) => f.type === 'message' && f.room === room && pred(f);
}
