// The root layout the App Router requires: the document around the page, as
// sveltekit/src/app.html is for SvelteKit.
export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
