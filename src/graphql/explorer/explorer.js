// Starts GraphiQL against this server's /graphql. The API key goes in the Headers tab:
// {"Authorization": "Bearer snip_..."}. Introspection (the schema, the docs) needs no key.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultQuery:
        "# Your API key goes in Headers, below:\n" +
        '# {"Authorization": "Bearer snip_..."}\n' +
        "{\n  me { email }\n  links(first: 10) {\n    edges { node { code url clicks } }\n" +
        "    pageInfo { hasNextPage endCursor }\n  }\n}\n",
    })
  );
})();
