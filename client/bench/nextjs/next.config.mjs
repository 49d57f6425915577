// Every page is exported to plain files (out/), like the SvelteKit baseline's
// static adapter and the Perseus export the edge relay serves.
export default {
  output: 'export',
  // The build runs in a copy outside the clone (build-nextjs.sh); pin the
  // project root there rather than let Next look for lockfiles further up.
  turbopack: { root: import.meta.dirname },
};
