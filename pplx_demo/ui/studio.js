() => {
  // pplx-embed search studio: small browser-side helpers (run once on page load).

  // Plotly draws a chart at 700 px when it is updated while its tab is hidden: resize every chart
  // when a tab becomes visible and when the window changes size.
  function resizePlots() {
    document.querySelectorAll('.js-plotly-plot').forEach((el) => {
      if (el.offsetParent === null) return;  // still hidden
      try {
        if (window.Plotly && window.Plotly.Plots) { window.Plotly.Plots.resize(el); return; }
      } catch (e) { /* fall through to the window event */ }
    });
    window.dispatchEvent(new Event('resize'));
  }
  window.pplxResizePlots = () => { [30, 200, 600].forEach((ms) => setTimeout(resizePlots, ms)); };
  document.addEventListener('click', (ev) => {
    if (ev.target && ev.target.closest && ev.target.closest('[role="tab"]')) window.pplxResizePlots();
  }, true);
  let pending = null;
  window.addEventListener('resize', (ev) => {
    if (!ev.isTrusted) return;  // ours
    clearTimeout(pending);
    pending = setTimeout(resizePlots, 150);
  });

  // Models that cannot run here stay listed, greyed out and not selectable; the reason is shown under them.
  function disableUnavailable() {
    document.querySelectorAll('#pplx-model label').forEach((label) => {
      const input = label.querySelector('input');
      if (!input) return;
      const off = label.textContent.includes('(not available here)');
      input.disabled = off;
      label.classList.toggle('pplx-disabled', off);
      if (off) label.title = 'Not available on this server: the reason and how to enable it are listed below.';
    });
  }
  const watch = new MutationObserver(disableUnavailable);
  const start = () => {
    const box = document.getElementById('pplx-model');
    if (!box) { setTimeout(start, 200); return; }
    disableUnavailable();
    watch.observe(box, { childList: true, subtree: true, characterData: true });
  };
  start();
}
