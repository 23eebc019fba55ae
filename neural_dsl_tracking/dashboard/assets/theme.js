/* The light and dark themes: the page's colours are CSS variables chosen by
   <html data-theme>, the figures' by their Plotly template, swapped in place. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    theme: {
        /* The theme shown: the one chosen with the toggle (the "theme-choice" store, kept in
           localStorage), else the browser's prefers-color-scheme. Applies it to the page and
           to every drawn figure whose template is another theme's. "switched": the page had a
           theme already, so its figures are swapped here and need not be drawn again. */
        apply: function (choice, templates) {
            if (choice !== "dark" && choice !== "light") {  // the store may not have loaded it yet
                try { choice = JSON.parse(window.localStorage.getItem("theme-choice")); } catch (e) { choice = null; }
            }
            var prefersDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
            var theme = choice === "dark" || choice === "light" ? choice : (prefersDark ? "dark" : "light");
            var switched = Boolean(document.documentElement.dataset.theme);
            document.documentElement.dataset.theme = theme;
            var template = templates && templates[theme];
            if (template && window.Plotly) {
                document.querySelectorAll(".js-plotly-plot").forEach(function (graph) {
                    var current = graph.layout && graph.layout.template;
                    if (graph._fullLayout && JSON.stringify(current) !== JSON.stringify(template)) {
                        window.Plotly.relayout(graph, {template: template});
                    }
                });
            }
            return {name: theme, switched: switched};
        },
        /* The toggle: the other theme, remembered as the choice. */
        toggle: function (clicks, theme) {
            return theme && theme.name === "dark" ? "light" : "dark";
        }
    }
});
