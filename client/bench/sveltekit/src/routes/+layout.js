// Prerender at build time, hydrate in the browser: the same delivery as the
// Perseus page (server-rendered HTML first, then the app attaches).
export const prerender = true;
