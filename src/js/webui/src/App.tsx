export function App() {
  return <main className="login-page"><h1>myapp</h1></main>;
}
