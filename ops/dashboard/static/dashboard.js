// The dashboard's live refresh: every data-refresh-seconds, each [data-live] element is fetched
// again from its URL (server-rendered HTML of the same templates) and swapped in; rows a reader
// opened stay open. The diagram's <img> shows why when the server cannot draw it.
(() => {
  "use strict";
  const body = document.body;
  const seconds = Math.max(1, Number(body.dataset.refreshSeconds) || 15);
  const live = document.getElementById("live");
  let refreshes = 0;

  async function refresh(part) {
    const open = new Set(Array.from(part.querySelectorAll("details[open]"), (d) => d.id));
    const response = await fetch(part.dataset.live, { cache: "no-store", headers: { Accept: "text/html" } });
    if (!response.ok) {
      throw new Error(`${part.dataset.live}: HTTP ${response.status}`);
    }
    part.innerHTML = await response.text();
    for (const id of open) {
      const details = id && document.getElementById(id);
      if (details) {
        details.open = true;
      }
    }
  }

  async function tick() {
    try {
      await Promise.all(Array.from(document.querySelectorAll("[data-live]"), refresh));
      refreshes += 1;
      body.dataset.refreshes = String(refreshes);
      live.textContent = `live: updated ${new Date().toLocaleTimeString()}, every ${seconds} s`;
      live.classList.remove("stale");
    } catch (error) {
      live.textContent = `not updated: ${error.message}; trying again in ${seconds} s`;
      live.classList.add("stale");
    } finally {
      window.setTimeout(tick, seconds * 1000);
    }
  }

  window.setTimeout(tick, seconds * 1000);

  const diagram = document.getElementById("diagram");
  const diagramError = document.getElementById("diagram-error");
  async function explain() {
    let text = "the diagram could not be drawn";
    try {
      const response = await fetch(diagram.src, { cache: "no-store" });
      text = `${text}: ${await response.text()}`;
    } catch (error) {
      text = `${text}: ${error.message}`;
    }
    diagram.closest("figure").hidden = true;
    diagramError.textContent = text;
    diagramError.hidden = false;
  }
  if (diagram && diagramError) {
    if (diagram.complete && diagram.naturalWidth === 0) {
      explain();
    } else {
      diagram.addEventListener("error", explain, { once: true });
    }
  }
})();
