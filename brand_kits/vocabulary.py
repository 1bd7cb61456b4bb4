"""Words a LoRA trigger token must not be: common English words, colours and product nouns.

A trigger made of letters only must be a word the text encoder has no strong prior for; otherwise the
LoRA fights (or overwrites) the word's everyday meaning. Tokens with a digit or underscore are always
allowed. This is a deliberately small, built-in list (no download), not a dictionary.
"""

from __future__ import annotations

_COMMON_ENGLISH = """
the be to of and a in that have i it for not on with he as you do at this but his by from they we
say her she or an will my one all would there their what so up out if about who get which go me when
make can like time no just him know take people into year your good some could them see other than
then now look only come its over think also back after use two how our work first well way even new
want because any these give day most us is are was were been has had did does said made went got
took came saw knew thought told found gave used find tell ask seem feel try leave call keep let begin
show hear play run move live believe hold bring happen write provide sit stand lose pay meet include
continue set learn change lead understand watch follow stop create speak read allow add spend grow
open walk win offer remember love consider appear buy wait serve die send expect build stay fall cut
reach kill remain suggest raise pass sell require report decide pull thing man woman child world life
hand part place case week company system program question government number night point home water
room mother area money story fact month lot right study book eye job word business issue side kind
head house service friend father power hour game line end member law car city community name
president team minute idea kid body information school face others level office door health person
art war history party result morning reason research girl guy moment air teacher force education
very much more many such long great little own old big high different small large next early young
important few public bad same able best better sure free real full special easy clear hard recent
certain personal open whole low late true simple short nice main last never always often still here
where why again really most very before through between under while during without around against
among within along across behind beyond since until upon above below near off down each every both
either neither another something nothing everything anything someone everyone yes yeah okay hello
please thank thanks sorry today tomorrow yesterday tonight everybody nobody somebody whatever really
photo photograph picture image style brand logo product design model shot view portrait background
"""

_COLOURS = """
red green blue yellow orange purple violet pink brown black white gray grey gold golden silver beige
cyan magenta teal navy maroon olive lime ivory cream tan coral turquoise bronze copper crimson indigo
lavender mint peach rose ruby scarlet amber charcoal khaki salmon plum burgundy emerald
"""

_PRODUCT_NOUNS = """
bottle bottles can jar cup mug glass box bag bags shoe shoes boot boots sneaker sneakers sandal hat
cap shirt tshirt dress skirt pants jeans jacket coat hoodie sweater sock socks scarf glove gloves belt
watch ring necklace bracelet earring earrings jewelry jewellery wallet purse backpack handbag suitcase
phone laptop tablet camera headphones speaker chair table sofa couch lamp desk bed pillow blanket
towel candle vase plate bowl spoon fork knife pan pot kettle soap shampoo lotion cream perfume
lipstick makeup brush comb toy doll ball bike bicycle helmet guitar book pen pencil notebook card
package packaging label sticker poster tube pump spray bar snack chocolate candy coffee tea wine beer
juice soda drink food pizza burger cake cookie bread sauce oil sunglasses glasses lens mask umbrella
clock tool drill hammer car truck sofa rug carpet mirror frame plant flower flowers tree dog cat
person woman man girl boy baby face hair hand logo icon
"""

COMMON_WORDS: frozenset[str] = frozenset((_COMMON_ENGLISH + _COLOURS + _PRODUCT_NOUNS).split())
