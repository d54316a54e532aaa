use crate::op_set2::OpSet;
use crate::types::{ObjId, ObjType};
use crate::{clock::Clock, exid::ExId, Prop};

/// An iterator over the "parents" of an object
///
/// The "parent" of an object in this context is the ([`ExId`], [`Prop`]) pair which specifies the
/// location of this object in the composite object which contains it. Each element in the iterator
/// is a [`Parent`], yielded in reverse order. This means that once the iterator returns `None` you
/// have reached the root of the document.
///
/// This is returned by [`crate::ReadDoc::parents`]
#[derive(Debug, Clone)]
pub struct Parents<'a> {
    pub(crate) obj: ObjId,
    pub(crate) ops: &'a OpSet,
    pub(crate) clock: Option<Clock>,
    /// storenode: set when an object's parent could not be found (upstream panics there).
    pub(crate) broken: bool,
}

impl Parents<'_> {
    /// Return the path this `Parents` represents
    ///
    /// This is _not_ in reverse order.
    pub fn path(self) -> Vec<(ExId, Prop)> {
        let mut path = self
            .map(|Parent { obj, prop, .. }| (obj, prop))
            .collect::<Vec<_>>();
        path.reverse();
        path
    }

    /// storenode: like `path`, but `None` when the chain of parents is broken (an object
    /// whose creating op or parent cannot be resolved, as a hostile change can make),
    /// where upstream's iterator panics.
    pub fn try_path(mut self) -> Option<Vec<(ExId, Prop)>> {
        let mut path = Vec::new();
        for Parent { obj, prop, .. } in &mut self {
            path.push((obj, prop));
        }
        if self.broken {
            return None;
        }
        path.reverse();
        Some(path)
    }

    /// Like `path` but returns `None` if the target is not visible
    pub fn visible_path(self) -> Option<Vec<(ExId, Prop)>> {
        let mut path = Vec::new();
        for Parent {
            obj, prop, visible, ..
        } in self
        {
            if !visible {
                return None;
            }
            path.push((obj, prop))
        }
        path.reverse();
        Some(path)
    }
}

impl Iterator for Parents<'_> {
    type Item = Parent;

    fn next(&mut self) -> Option<Self::Item> {
        if self.obj.is_root() || self.broken {
            return None;
        }
        // storenode: upstream unwraps here; a broken chain ends the walk and is reported
        // by `try_path`.
        let Some(super::op_set::Parent {
            obj,
            typ,
            prop,
            visible,
            ..
        }) = self.ops.parent_object(&self.obj, self.clock.as_ref())
        else {
            self.broken = true;
            return None;
        };
        self.obj = obj;
        let obj = self.ops.id_to_exid(self.obj.0);
        Some(Parent {
            obj,
            typ,
            prop,
            visible,
        })
    }
}

/// A component of a path to an object
#[derive(Debug, PartialEq, Eq)]
pub struct Parent {
    /// The object ID this component refers to
    pub obj: ExId,
    /// The type of the parent object
    pub typ: ObjType,
    /// The property within `obj` this component refers to
    pub prop: Prop,
    /// Whether this component is "visible"
    ///
    /// An "invisible" component is one where the property is hidden, either because it has been
    /// deleted or because there is a conflict on this (object, property) pair and this value does
    /// not win the conflict.
    pub visible: bool,
}

#[cfg(test)]
mod tests {
    use super::Parent;
    use crate::{transaction::Transactable, ObjType, Prop, ReadDoc};

    /// storenode: `try_path` is `path` for a resolvable object, and `None` (not a panic)
    /// for an object whose creating op is not in the document.
    #[test]
    fn try_path_is_path_or_none_where_the_chain_breaks() {
        let mut doc = crate::AutoCommit::new();
        let members = doc
            .put_object(crate::ROOT, "members", crate::ObjType::Map)
            .unwrap();
        let list = doc.put_object(&members, "m1", ObjType::List).unwrap();
        let inner = doc.insert_object(&list, 0, ObjType::Map).unwrap();
        for obj in [&members, &list, &inner] {
            assert_eq!(
                doc.parents(obj).unwrap().try_path(),
                Some(doc.parents(obj).unwrap().path())
            );
        }
        let missing = super::Parents {
            obj: crate::types::ObjId(crate::types::OpId::new(9_999, 0)),
            ops: &doc.doc.ops,
            clock: None,
            broken: false,
        };
        assert_eq!(missing.clone().try_path(), None);
        assert!(missing.path().is_empty(), "the walk ends instead of panicking");
    }

    #[test]
    fn test_invisible_parents() {
        // Create a document with a list of objects, then delete one of the objects, then generate
        // a path to the deleted object.

        let mut doc = crate::AutoCommit::new();
        let list = doc
            .put_object(crate::ROOT, "list", crate::ObjType::List)
            .unwrap();
        let obj1 = doc.insert_object(&list, 0, crate::ObjType::Map).unwrap();
        let _obj2 = doc.insert_object(&list, 1, crate::ObjType::Map).unwrap();
        doc.put(&obj1, "key", "value").unwrap();
        doc.delete(&list, 0).unwrap();

        let mut parents = doc.parents(&obj1).unwrap().collect::<Vec<_>>();
        parents.reverse();
        assert_eq!(
            parents,
            vec![
                Parent {
                    obj: crate::ROOT,
                    prop: Prop::Map("list".to_string()),
                    visible: true,
                    typ: ObjType::Map,
                },
                Parent {
                    obj: list,
                    prop: Prop::Seq(0),
                    visible: false,
                    typ: ObjType::List,
                },
            ]
        );
    }
}
