'use client';

import { useEffect, useState } from 'react';

// The client part of the page: prerendered at build time, hydrated in the
// browser, the same delivery as the Perseus and SvelteKit pages.
export default function Poll({ poll }) {
  // Prerendered disabled; enabled in an effect, which runs once hydration has
  // attached the handlers, so "enabled" means "works" (client/bench/README.md).
  const [ready, setReady] = useState(false);
  const [pending, setPending] = useState(null);

  useEffect(() => {
    setReady(true);
  }, []);

  return (
    <main>
      <h1>{poll.title}</h1>
      <ul>
        {poll.options.map((option) => (
          <li key={option.id}>
            <span>{option.name}</span>
            <span data-count="">{option.count}</span>
            <button data-vote={option.id} disabled={!ready} onClick={() => setPending(option.id)}>
              Vote
            </button>
          </li>
        ))}
      </ul>
      {pending !== null && <p data-vote-state="">pending</p>}
    </main>
  );
}
