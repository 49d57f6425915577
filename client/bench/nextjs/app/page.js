import Poll from './poll.js';

// The same poll the Perseus page renders for the benchmark (client/bench/README.md),
// and the same as sveltekit/src/routes/+page.svelte.
const poll = {
  title: 'Which route should the night bus take?',
  options: [
    { id: 0, name: 'Harbour loop', count: 412 },
    { id: 1, name: 'University and hospital', count: 388 },
    { id: 2, name: 'Old town', count: 157 },
    { id: 3, name: 'Airport express', count: 96 },
  ],
};

// A server component: its metadata gives the <title>, and it is rendered at
// build time (static export); only <Poll> is shipped to the browser.
export const metadata = { title: poll.title };

export default function Page() {
  return <Poll poll={poll} />;
}
