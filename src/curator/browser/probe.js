async (url, metadataMs, startMs, playMs) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const video = document.createElement('video');
  video.muted = true;
  video.defaultMuted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.preload = 'auto';
  (document.body || document.documentElement).appendChild(video);
  const report = (stage, extra) => JSON.stringify(Object.assign({
    stage,
    width: video.videoWidth,
    height: video.videoHeight,
    duration: Number.isFinite(video.duration) ? video.duration : null,
    error_code: video.error ? video.error.code : 0,
    error_message: video.error ? (video.error.message || '') : '',
  }, extra || {}));
  const stage = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), metadataMs);
    video.addEventListener('loadedmetadata', () => { clearTimeout(timer); resolve('metadata'); }, { once: true });
    video.addEventListener('error', () => { clearTimeout(timer); resolve('error'); }, { once: true });
    video.src = url;
  });
  if (stage !== 'metadata') return report(stage);
  const start = video.currentTime;
  let playError = '';
  try {
    const started = await Promise.race([video.play().then(() => true), sleep(startMs).then(() => false)]);
    if (!started) playError = 'playback did not start';
  } catch (e) {
    playError = String((e && (e.message || e.name)) || e);
  }
  if (!playError) await sleep(playMs);
  const result = report('played', { advanced: video.currentTime - start, ended: video.ended, play_error: playError });
  // Stop downloading right away; the tab is closed next anyway.
  video.pause();
  video.removeAttribute('src');
  video.load();
  return result;
}