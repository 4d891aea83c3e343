(() => {
  const MEDIA_FILE = /\.(mp4|m4v|mov|webm|mkv|ogv)$/i;
  const clean = (value) => (value == null ? '' : String(value)).replace(/\s+/g, ' ').trim();
  const absolute = (value) => {
    if (typeof value !== 'string' || !value.trim()) return null;
    try {
      const url = new URL(value.trim(), document.baseURI);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) {
      return null;
    }
  };
  const isMediaFile = (url) => {
    try { return MEDIA_FILE.test(new URL(url).pathname); } catch (e) { return false; }
  };

  // <meta> values by lower-cased name or property.
  const metas = new Map();
  for (const m of document.querySelectorAll('meta[content]')) {
    const key = clean(m.getAttribute('property') || m.getAttribute('name') || m.getAttribute('itemprop')).toLowerCase();
    const value = clean(m.getAttribute('content'));
    if (!key || !value) continue;
    if (!metas.has(key)) metas.set(key, []);
    metas.get(key).push(value);
  }
  const meta = (...keys) => {
    for (const key of keys) if (metas.has(key)) return metas.get(key)[0];
    return '';
  };
  const metaAll = (...keys) => keys.flatMap((key) => metas.get(key) || []);

  // JSON-LD VideoObjects, wherever they are nested (@graph, mainEntity, video, ...).
  const ldVideos = [];
  const isVideoObject = (node) => [].concat(node['@type'] || [])
    .some((type) => typeof type === 'string' && /(^|[:\/#])VideoObject$/.test(type));
  const walk = (node, depth) => {
    if (!node || typeof node !== 'object' || depth > 10) return;
    if (Array.isArray(node)) { for (const item of node) walk(item, depth + 1); return; }
    if (isVideoObject(node)) ldVideos.push(node);
    for (const value of Object.values(node)) if (value && typeof value === 'object') walk(value, depth + 1);
  };
  for (const script of document.querySelectorAll('script[type="application/ld+json" i]')) {
    try { walk(JSON.parse(script.textContent), 0); } catch (e) { /* broken JSON-LD is common: skip it */ }
  }
  const ldText = (value) => {
    for (const item of [].concat(value == null ? [] : value)) {
      const text = item && typeof item === 'object' ? clean(item['@value'] || item.name || '') : clean(item);
      if (text) return text;
    }
    return '';
  };
  const ldUrls = (value) => [].concat(value == null ? [] : value)
    .map((item) => (item && typeof item === 'object' ? item.url || item.contentUrl || item['@id'] : item))
    .map(absolute).filter(Boolean);
  const ldKeywords = (value) => [].concat(value == null ? [] : value)
    .flatMap((item) => (item && typeof item === 'object' ? [item.name || item['@value'] || ''] : String(item).split(',')))
    .map(clean).filter(Boolean);
  const looksLikeUrl = (text) => /^(https?:)?\/\//i.test(text) || text.startsWith('/');
  const ldLicense = (value) => {
    for (const item of [].concat(value == null ? [] : value)) {
      if (item && typeof item === 'object') {
        const url = absolute(item.url || item['@id'] || '');
        const text = clean(item.name || '');
        if (url || text) return { url, text };
      } else if (clean(item)) {
        const text = clean(item);
        return looksLikeUrl(text) ? { url: absolute(text), text: '' } : { url: null, text };
      }
    }
    return null;
  };

  // Candidates by absolute media URL.
  const found = new Map();
  const add = (url, extra) => {
    if (!url) return;
    const candidate = found.get(url) || { url, elements: [], ld: null, og: false };
    if (extra.element && !candidate.elements.includes(extra.element)) candidate.elements.push(extra.element);
    if (extra.ld && !candidate.ld) candidate.ld = extra.ld;
    if (extra.og) candidate.og = true;
    found.set(url, candidate);
  };
  for (const video of ldVideos) {
    const urls = ldUrls(video.contentUrl).concat(ldUrls(video.embedUrl).filter(isMediaFile));
    if (urls.length) add(urls[0], { ld: video });
  }
  const preference = (source) => {
    const hint = (source.type || '') + ' ' + new URL(source.url).pathname;
    if (/mp4|m4v/i.test(hint)) return 0;
    if (/webm/i.test(hint)) return 1;
    return 2;
  };
  for (const video of document.querySelectorAll('video')) {
    let url = absolute(video.getAttribute('src'));
    if (!url) {
      const sources = [...video.querySelectorAll('source[src]')]
        .map((s) => ({ url: absolute(s.getAttribute('src')), type: s.getAttribute('type') }))
        .filter((s) => s.url);
      sources.sort((a, b) => preference(a) - preference(b));
      url = sources.length ? sources[0].url : null;
    }
    add(url, { element: video });
  }
  const ogType = meta('og:video:type');
  if (!ogType || /^video\//i.test(ogType)) {
    const seen = new Set();
    for (const value of metaAll('og:video:secure_url', 'og:video:url', 'og:video')) {
      const url = absolute(value);
      if (!url || (!ogType && !isMediaFile(url))) continue;
      const key = url.replace(/^https?:/, '');
      if (seen.has(key)) continue;
      seen.add(key);
      add(url, { og: true });
    }
  }
  for (const link of document.querySelectorAll('a[href]')) {
    const url = absolute(link.getAttribute('href'));
    if (url && isMediaFile(url)) add(url, { element: link });
  }
  const candidates = [...found.values()];

  // License declarations.
  const licenseElements = [...document.querySelectorAll('a[rel][href], link[rel][href], area[rel][href]')]
    .filter((e) => /(^|\s)license(\s|$)/i.test(e.getAttribute('rel')));
  const licenseOf = (e) => ({
    url: absolute(e.getAttribute('href')),
    text: clean(e.tagName === 'LINK' ? e.getAttribute('title') : (e.textContent || e.getAttribute('title'))),
  });
  const depthOf = (node) => { let depth = 0; for (let n = node.parentElement; n; n = n.parentElement) depth++; return depth; };
  const commonDepth = (a, b) => {
    const mine = new Set();
    for (let n = a; n; n = n.parentElement) mine.add(n);
    for (let n = b; n; n = n.parentElement) if (mine.has(n)) return depthOf(n);
    return -1;
  };
  const placed = candidates.filter((c) => c.elements.length);
  const owners = licenseElements.map((license) => {
    let depth = -1, who = [];
    for (const c of placed) {
      const d = Math.max(...c.elements.map((e) => commonDepth(e, license)));
      if (d > depth) { depth = d; who = [c]; } else if (d === depth) who.push(c);
    }
    return { license, depth, who };
  });
  const linkLicense = (c) => {
    let best = null;
    for (const o of owners) if (o.who.includes(c) && (!best || o.depth > best.depth)) best = o;
    return best ? licenseOf(best.license) : null;
  };
  const pageWide = owners.find((o) => o.who.length === placed.length);
  const pageLicense = pageWide ? licenseOf(pageWide.license) : null;
  const metaLicenseText = meta('license', 'dcterms.license', 'dc.rights', 'dcterms.rights', 'dc.license');
  const metaLicense = !metaLicenseText ? null
    : looksLikeUrl(metaLicenseText) ? { url: absolute(metaLicenseText), text: '' } : { url: null, text: metaLicenseText };

  // Titles: JSON-LD, og:title (for the page's own video), the element's own label, its caption or heading.
  const ogTitle = meta('og:title', 'twitter:title');
  const nearbyHeading = (element) => {
    const figure = element.closest('figure');
    const caption = figure && figure.querySelector('figcaption');
    if (caption && clean(caption.textContent)) return clean(caption.textContent);
    let node = element;
    for (let level = 0; node && node !== document.body && level < 4; level++, node = node.parentElement) {
      let sibling = node.previousElementSibling;
      for (let i = 0; sibling && i < 6; i++, sibling = sibling.previousElementSibling) {
        if (/^H[1-6]$/.test(sibling.tagName) && clean(sibling.textContent)) return clean(sibling.textContent);
      }
    }
    return '';
  };
  const ownLabel = (element) => {
    const label = clean(element.getAttribute('title') || element.getAttribute('aria-label'));
    if (label) return label;
    if (element.tagName === 'A') {
      const text = clean(element.textContent);
      if (text && !MEDIA_FILE.test(text) && !/^(download|video|link|here|click here|mp4|webm)$/i.test(text)) return text;
    }
    return '';
  };
  const titleOf = (c) => {
    const ld = c.ld ? ldText(c.ld.name) : '';
    if (ld) return ld;
    if (ogTitle && (c.og || candidates.length === 1)) return ogTitle;
    for (const element of c.elements) {
      const title = ownLabel(element) || nearbyHeading(element);
      if (title) return title;
    }
    return ogTitle || clean(document.title);
  };

  const pageTags = [
    ...metaAll('keywords', 'news_keywords').flatMap((k) => k.split(',')),
    ...metaAll('article:tag', 'video:tag', 'og:video:tag'),
  ].map(clean).filter(Boolean);
  const pageDescription = meta('og:description', 'description', 'twitter:description');

  const out = candidates.map((c) => ({
    media_url: c.url,
    title: titleOf(c),
    description: (c.ld && ldText(c.ld.description)) || pageDescription,
    tags: (c.ld ? ldKeywords(c.ld.keywords) : []).concat(pageTags),
    duration: (c.ld && ldText(c.ld.duration)) || (c.og ? meta('og:video:duration', 'video:duration') : ''),
    licenses: [
      c.ld ? ldLicense(c.ld.license) : null,
      c.elements.length ? linkLicense(c) : pageLicense,
      metaLicense,
    ].filter(Boolean),
  }));
  const robots = meta('robots').toLowerCase();
  const links = [...new Set([...document.querySelectorAll('a[href]')]
    .map((a) => absolute(a.getAttribute('href'))).filter(Boolean))].slice(0, 5000);
  return JSON.stringify({ url: location.href, links, nofollow: /\b(nofollow|none)\b/.test(robots), candidates: out });
})()