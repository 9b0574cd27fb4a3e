//! Incoming media, downloaded from WhatsApp on first request and kept on
//! disk (`<data_dir>/media/<message id>`) within a size cap and a
//! retention, so a second request does not go back to WhatsApp (whose
//! copies expire after some weeks anyway).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::fs;
use tokio::io::AsyncWriteExt;

use crate::domain::MessageId;

#[derive(Debug, Clone)]
pub struct MediaCache {
    dir: PathBuf,
    max_bytes: u64,
    retention: Duration,
}

impl MediaCache {
    pub fn new(dir: PathBuf, max_bytes: u64, retention: Duration) -> Self {
        Self {
            dir,
            max_bytes,
            retention,
        }
    }

    fn path(&self, id: MessageId) -> PathBuf {
        // A message id is a UUID: it cannot name anything outside the dir.
        self.dir.join(id.to_string())
    }

    /// The cached file, opened, if it is there and not past retention.
    pub async fn open(&self, id: MessageId) -> std::io::Result<Option<fs::File>> {
        let path = self.path(id);
        match fs::File::open(&path).await {
            Ok(file) => {
                let modified = file.metadata().await?.modified()?;
                if self.expired(modified) {
                    drop(file);
                    remove_if_present(&path).await?;
                    return Ok(None);
                }
                Ok(Some(file))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps `bytes` for `id`, then trims the cache back under its cap. A
    /// file bigger than the whole cap is not kept.
    pub async fn put(&self, id: MessageId, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() as u64 > self.max_bytes {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).await?;
        // Written aside and renamed, so a reader never sees half a file.
        let partial = self.dir.join(format!("{id}.part-{}", uuid::Uuid::new_v4()));
        let written = async {
            let mut file = fs::File::create(&partial).await?;
            file.write_all(bytes).await?;
            file.sync_all().await?;
            fs::rename(&partial, self.path(id)).await
        }
        .await;
        if written.is_err() {
            let _ = remove_if_present(&partial).await;
        }
        written?;
        self.trim(Some(id)).await.map(|_| ())
    }

    /// Removes files past retention, then the oldest until the cache fits
    /// its cap; `keep` is spared (it was just written). Returns how many
    /// files went.
    pub async fn trim(&self, keep: Option<MessageId>) -> std::io::Result<usize> {
        let mut entries = match fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let keep = keep.map(|id| id.to_string());
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let meta = entry.metadata().await?;
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified()?;
            files.push((modified, meta.len(), entry.path(), entry.file_name()));
        }
        let mut removed = 0;
        let mut total: u64 = 0;
        let mut kept = Vec::new();
        for (modified, len, path, name) in files {
            // Leftovers of an interrupted write are removed once old.
            if self.expired(modified) {
                remove_if_present(&path).await?;
                removed += 1;
            } else {
                total += len;
                kept.push((modified, len, path, name));
            }
        }
        kept.sort_by_key(|(modified, ..)| *modified);
        for (_, len, path, name) in kept {
            if total <= self.max_bytes {
                break;
            }
            if keep.as_deref().is_some_and(|k| name.to_str() == Some(k)) {
                continue;
            }
            remove_if_present(&path).await?;
            total = total.saturating_sub(len);
            removed += 1;
        }
        Ok(removed)
    }

    fn expired(&self, modified: SystemTime) -> bool {
        modified.elapsed().is_ok_and(|age| age > self.retention)
    }
}

async fn remove_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn read(cache: &MediaCache, id: MessageId) -> Option<Vec<u8>> {
        let mut file = cache.open(id).await.ok()??;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.ok()?;
        Some(bytes)
    }

    #[tokio::test]
    async fn keeps_files_under_the_cap_dropping_the_oldest() -> std::io::Result<()> {
        let dir = tempfile::TempDir::new()?;
        let cache = MediaCache::new(dir.path().join("media"), 10, Duration::from_secs(3600));
        let (a, b, c) = (MessageId::new(), MessageId::new(), MessageId::new());
        assert_eq!(read(&cache, a).await, None);
        cache.put(a, b"12345").await?;
        // Modification times must differ for "oldest" to mean something.
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache.put(b, b"6789").await?;
        assert_eq!(read(&cache, a).await.as_deref(), Some(&b"12345"[..]));
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache.put(c, b"abcd").await?;
        assert_eq!(read(&cache, a).await, None, "the oldest went");
        assert_eq!(read(&cache, b).await.as_deref(), Some(&b"6789"[..]));
        assert_eq!(read(&cache, c).await.as_deref(), Some(&b"abcd"[..]));
        cache.put(MessageId::new(), &[0; 11]).await?;
        assert_eq!(
            read(&cache, c).await.as_deref(),
            Some(&b"abcd"[..]),
            "too big to keep"
        );
        Ok(())
    }

    #[tokio::test]
    async fn files_past_retention_are_gone() -> std::io::Result<()> {
        let dir = tempfile::TempDir::new()?;
        let cache = MediaCache::new(dir.path().to_path_buf(), 100, Duration::ZERO);
        let id = MessageId::new();
        cache.put(id, b"x").await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(cache.open(id).await?.is_none());
        Ok(())
    }
}
