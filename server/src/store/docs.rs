//! Typed documents on top of [`Store::doc`] and [`Store::write_doc`]: read a `T`, list
//! them, and update one with a closure that is retried when another writer got there
//! first (compare-and-set), so read-check-write sequences are atomic on every backend.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Collection, Expect, Store, StoreError};

/// How often an update is retried when others keep changing the same document.
const MAX_ATTEMPTS: u64 = 100;

/// The documents of one collection, as `T`.
pub struct Docs<'a, T> {
    store: &'a dyn Store,
    collection: Collection,
    kind: PhantomData<fn() -> T>,
}

/// Why an update did not happen: the closure refused, or the store failed.
#[derive(Debug)]
pub enum UpdateError<E> {
    /// The closure said no; nothing was written.
    Refused(E),
    /// The store failed (or the document changed too often to get a word in).
    Store(StoreError),
}

impl<E> From<StoreError> for UpdateError<E> {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl<'a, T: Serialize + DeserializeOwned> Docs<'a, T> {
    /// The documents of `collection` in `store`.
    pub fn new(store: &'a dyn Store, collection: Collection) -> Self {
        Self {
            store,
            collection,
            kind: PhantomData,
        }
    }

    fn decode(&self, key: &str, json: &str) -> Result<T, StoreError> {
        serde_json::from_str(json).map_err(|err| {
            StoreError::Corrupt(format!("{} {key}: {err}", self.collection.as_str()))
        })
    }

    fn encode(value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|err| StoreError::Corrupt(err.to_string()))
    }

    /// One document.
    pub async fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.store.doc(self.collection, key).await? {
            Some(json) => self.decode(key, &json).map(Some),
            None => Ok(None),
        }
    }

    /// Every document, ordered by key.
    pub async fn all(&self) -> Result<Vec<(String, T)>, StoreError> {
        let mut all = Vec::new();
        for (key, json) in self.store.docs(self.collection).await? {
            let value = self.decode(&key, &json)?;
            all.push((key, value));
        }
        Ok(all)
    }

    /// Writes a document, whatever was there.
    pub async fn put(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let json = Self::encode(value)?;
        self.store
            .write_doc(self.collection, key, Expect::Anything, Some(json))
            .await
            .map(|_| ())
    }

    /// Writes a document only if there is none; returns whether it did.
    pub async fn insert_new(&self, key: &str, value: &T) -> Result<bool, StoreError> {
        let json = Self::encode(value)?;
        self.store
            .write_doc(self.collection, key, Expect::Absent, Some(json))
            .await
    }

    /// Deletes a document.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store
            .write_doc(self.collection, key, Expect::Anything, None)
            .await
            .map(|_| ())
    }

    /// Reads the document, lets `change` decide what it becomes (`Some` to write, `None`
    /// to delete) and what to return, and writes it if nobody changed it meanwhile;
    /// otherwise reads again and asks again.
    pub async fn update<R, E>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> Result<(Option<T>, R), E>,
    ) -> Result<R, UpdateError<E>> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Spread the writers that lost out, so they do not collide again.
                let pause = rand::random_range(0..=attempt.min(20));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            let current = self.store.doc(self.collection, key).await?;
            let expect = match &current {
                Some(json) => Expect::Value(json.clone()),
                None => Expect::Absent,
            };
            let value = current
                .as_deref()
                .map(|json| self.decode(key, json))
                .transpose()?;
            let (next, result) = change(value).map_err(UpdateError::Refused)?;
            let json = next.as_ref().map(Self::encode).transpose()?;
            if current.is_none() && json.is_none() {
                return Ok(result);
            }
            if self
                .store
                .write_doc(self.collection, key, expect, json)
                .await?
            {
                return Ok(result);
            }
        }
        Err(UpdateError::Store(StoreError::Unavailable(format!(
            "{} {key} kept changing; try again",
            self.collection.as_str()
        ))))
    }
}
