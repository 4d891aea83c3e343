(() => {
  const declare = () => {
    const link = document.createElement('link');
    link.rel = 'icon';
    link.href = 'data:,';
    (document.head || document.documentElement).prepend(link);
  };
  if (document.head) declare(); else document.addEventListener('DOMContentLoaded', declare, { once: true });
})()